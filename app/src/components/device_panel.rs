use crate::chart::render_series_svg;
use crate::model::DashboardState;
use leptos::prelude::*;

/// The selected device (or the first one): one live chart per field.
#[component]
pub fn DevicePanel(
    state: RwSignal<DashboardState>,
    selected: RwSignal<Option<String>>,
) -> impl IntoView {
    let current = Memo::new(move |_| {
        selected
            .get()
            .filter(|id| state.with(|s| s.devices.contains_key(id)))
            .or_else(|| state.with(|s| s.devices.keys().next().cloned()))
    });

    let charts = move || {
        let id = current.get()?;
        state.with(|s| {
            let device = s.devices.get(&id)?;
            Some(
                device
                    .series
                    .iter()
                    .map(|(field, points)| {
                        let points: Vec<(i64, f64)> = points.iter().copied().collect();
                        // plotters' SVG backend escapes the device-supplied field name.
                        let svg = render_series_svg(field, &points);
                        view! {
                            <figure class="chart" data-field=field.clone() data-points=points.len()>
                                <div class="chart-svg" inner_html=svg></div>
                            </figure>
                        }
                    })
                    .collect_view(),
            )
        })
    };

    view! {
        <section class="device-panel" aria-label="Selected device">
            {move || {
                current
                    .get()
                    .map(|id| {
                        view! {
                            <h2 class="panel-title" data-testid="panel-title">{id}</h2>
                            <div class="charts">{charts}</div>
                        }
                    })
            }}
        </section>
    }
}
