//! The user and password a service's URL carries (`mqtt://user:pass@host`,
//! `nats://user:pass@host`, `nats://token@host`): the clients the hub uses for those services
//! take them as options, not from the URL.

/// The user (or token) and password in `url`, percent-decoded; `None` without a user.
/// Percent-decoding only: in the user part of a URL `+` is a plus, not a space.
pub fn url_credentials(url: &url::Url) -> Option<(String, Option<String>)> {
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = url.username();
    (!user.is_empty()).then(|| (decode(user), url.password().map(decode)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(url: &str) -> Option<(String, Option<String>)> {
        url_credentials(&url::Url::parse(url).unwrap())
    }

    #[test]
    fn users_passwords_and_tokens_are_decoded() {
        assert_eq!(of("nats://host:4222"), None);
        assert_eq!(
            of("nats://hub:s%40cret+1@host"),
            Some(("hub".into(), Some("s@cret+1".into())))
        );
        assert_eq!(of("nats://t%2Bk@host"), Some(("t+k".into(), None)));
    }
}
