//! `/login`: a plain HTML form posted to the server (`POST /login`), so signing in works before
//! the WebAssembly has loaded, and without it. The server answers with a redirect: where the
//! person was going, or back here with `?failed=1`.

use crate::links::LOGIN_PAGE;
use leptos::prelude::*;

#[component]
pub fn LoginPage(failed: bool, next: String) -> impl IntoView {
    view! {
        <main class="login">
            <form class="login-form" method="post" action=LOGIN_PAGE>
                <h1>"IoT Hub"</h1>
                <p class="hint">"Sign in to see and control your devices."</p>
                {failed
                    .then(|| {
                        view! {
                            <p class="error" role="alert" data-testid="login-failed">
                                "Wrong user name or password."
                            </p>
                        }
                    })}
                <label>
                    "User"
                    <input name="user" autocomplete="username" required autofocus />
                </label>
                <label>
                    "Password"
                    <input
                        type="password"
                        name="password"
                        autocomplete="current-password"
                        required
                    />
                </label>
                <input type="hidden" name="next" value=next />
                <button type="submit">"Sign in"</button>
            </form>
        </main>
    }
}
