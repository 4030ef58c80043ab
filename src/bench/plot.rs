//! Line charts as inline SVG, for the bench's HTML reports: no script, no external file,
//! so a report opens anywhere, offline. Axes are linear or log10, with ticks at round
//! numbers (or ticks the caller names, as the percentile axis of a latency distribution).

use std::fmt::Write as _;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 320.0;
const MARGIN_LEFT: f64 = 64.0;
const MARGIN_RIGHT: f64 = 16.0;
const MARGIN_TOP: f64 = 28.0;
const MARGIN_BOTTOM: f64 = 44.0;

/// Colours of successive runs, distinguishable by most readers.
pub const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub colour: &'static str,
    pub dashed: bool,
}

pub struct Axis {
    pub label: String,
    pub log: bool,
    /// Ticks at these values with these labels, instead of round numbers.
    pub ticks: Option<Vec<(f64, String)>>,
}

impl Axis {
    pub fn linear(label: &str) -> Axis {
        Axis { label: label.to_owned(), log: false, ticks: None }
    }

    pub fn log(label: &str) -> Axis {
        Axis { label: label.to_owned(), log: true, ticks: None }
    }

    fn position(&self, value: f64) -> f64 {
        if self.log {
            value.max(f64::MIN_POSITIVE).log10()
        } else {
            value
        }
    }

    /// The axis's extent in position space, covering `low..=high` data values.
    fn extent(&self, low: f64, high: f64) -> (f64, f64) {
        if self.log {
            let low = low.max(1e-3);
            let high = high.max(low * 10.0);
            (low.log10().floor(), high.log10().ceil())
        } else {
            let low = low.min(0.0);
            let step = round_step((high - low).max(1e-9) / 5.0);
            (low, (high / step).ceil().max(1.0) * step)
        }
    }

    fn tick_values(&self, extent: (f64, f64)) -> Vec<(f64, String)> {
        if let Some(ticks) = &self.ticks {
            return ticks.iter().filter(|(value, _)| *value >= extent.0 && *value <= extent.1).cloned().collect();
        }
        if self.log {
            let (low, high) = (extent.0 as i32, extent.1 as i32);
            return (low..=high).map(|exponent| (f64::from(exponent), number(10f64.powi(exponent)))).collect();
        }
        let step = round_step((extent.1 - extent.0) / 5.0);
        let count = ((extent.1 - extent.0) / step).round() as usize;
        assert!(count <= 20, "a linear axis has few ticks");
        (0..=count).map(|index| extent.0 + index as f64 * step).map(|value| (value, number(value))).collect()
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn round_step(raw: f64) -> f64 {
    assert!(raw > 0.0);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|factor| factor * power).find(|step| *step >= raw).unwrap_or(10.0 * power)
}

/// A tick label: no trailing zeros, thousands as k.
fn number(value: f64) -> String {
    if value.abs() >= 10_000.0 {
        format!("{}k", number(value / 1000.0))
    } else if value == value.trunc() {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// Text made safe inside HTML and SVG elements and attributes.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One chart: `series` drawn against the axes, with a legend.
pub fn line_chart(title: &str, x: &Axis, y: &Axis, series: &[Series]) -> String {
    let points = || series.iter().flat_map(|one| one.points.iter()).filter(|(px, py)| px.is_finite() && py.is_finite());
    let (x_low, x_high) = points().fold((f64::MAX, f64::MIN), |(low, high), (px, _)| (low.min(*px), high.max(*px)));
    let (y_low, y_high) = points().fold((f64::MAX, f64::MIN), |(low, high), (_, py)| (low.min(*py), high.max(*py)));
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">"#
    );
    let _ =
        write!(svg, r#"<text x="{}" y="16" font-size="13" font-weight="bold">{}</text>"#, MARGIN_LEFT, escape(title));
    if x_low > x_high {
        svg.push_str(r#"<text x="200" y="160">no data</text></svg>"#);
        return svg;
    }
    let x_extent = x.extent(x_low, x_high);
    let y_extent = y.extent(y_low, y_high);
    let plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let span = |extent: (f64, f64)| (extent.1 - extent.0).max(1e-9);
    let to_x = |value: f64| MARGIN_LEFT + (x.position(value) - x_extent.0) / span(x_extent) * plot_width;
    let to_y = |value: f64| MARGIN_TOP + plot_height - (y.position(value) - y_extent.0) / span(y_extent) * plot_height;
    let at_x = |position: f64| MARGIN_LEFT + (position - x_extent.0) / span(x_extent) * plot_width;
    let at_y = |position: f64| MARGIN_TOP + plot_height - (position - y_extent.0) / span(y_extent) * plot_height;
    for (position, label) in x.tick_values(x_extent) {
        let px = at_x(position);
        let _ = write!(
            svg,
            r##"<line x1="{px:.1}" y1="{MARGIN_TOP}" x2="{px:.1}" y2="{:.1}" stroke="#ddd"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            MARGIN_TOP + plot_height,
            MARGIN_TOP + plot_height + 14.0,
            escape(&label)
        );
    }
    for (position, label) in y.tick_values(y_extent) {
        let py = at_y(position);
        let _ = write!(
            svg,
            r##"<line x1="{MARGIN_LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            MARGIN_LEFT + plot_width,
            MARGIN_LEFT - 4.0,
            py + 4.0,
            escape(&label)
        );
    }
    let _ = write!(
        svg,
        r##"<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{plot_width}" height="{plot_height}" fill="none" stroke="#888"/>"##
    );
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        MARGIN_LEFT + plot_width / 2.0,
        HEIGHT - 6.0,
        escape(&x.label)
    );
    let _ = write!(
        svg,
        r#"<text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        MARGIN_TOP + plot_height / 2.0,
        escape(&y.label)
    );
    for (index, one) in series.iter().enumerate() {
        let path: Vec<String> = one
            .points
            .iter()
            .filter(|(px, py)| px.is_finite() && py.is_finite() && (!y.log || *py > 0.0))
            .map(|(px, py)| format!("{:.1},{:.1}", to_x(*px), to_y(*py)))
            .collect();
        let dash = if one.dashed { r#" stroke-dasharray="5 3""# } else { "" };
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.6"{dash} points="{}"/>"#,
            one.colour,
            path.join(" ")
        );
        let legend_y = MARGIN_TOP + 12.0 + index as f64 * 14.0;
        let _ = write!(
            svg,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            MARGIN_LEFT + 8.0,
            legend_y - 4.0,
            MARGIN_LEFT + 28.0,
            legend_y - 4.0,
            one.colour,
            MARGIN_LEFT + 32.0,
            legend_y,
            escape(&one.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(round_step(0.7), 1.0);
        assert_eq!(round_step(1.3), 2.0);
        assert_eq!(round_step(3.0), 5.0);
        assert_eq!(round_step(4200.0), 5000.0);
        assert_eq!(number(20000.0), "20k");
        assert_eq!(number(0.25), "0.25");
    }

    #[test]
    fn a_chart_draws_every_series_within_its_frame() {
        let series = vec![
            Series { name: "a <1>".into(), points: vec![(0.0, 1.0), (1.0, 3.0)], colour: COLOURS[0], dashed: false },
            Series { name: "b".into(), points: vec![(0.0, 0.5), (1.0, 100.0)], colour: COLOURS[1], dashed: true },
        ];
        let svg = line_chart("latency", &Axis::linear("s"), &Axis::log("ms"), &series);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt;1&gt;") && svg.ends_with("</svg>"));
        for coordinates in svg.split("points=\"").skip(1) {
            for point in coordinates.split('"').next().expect("points").split(' ') {
                let (px, py) = point.split_once(',').expect("x,y");
                let (px, py): (f64, f64) = (px.parse().expect("x"), py.parse().expect("y"));
                assert!((MARGIN_LEFT..=WIDTH - MARGIN_RIGHT).contains(&px), "{px}");
                assert!((MARGIN_TOP..=HEIGHT - MARGIN_BOTTOM).contains(&py), "{py}");
            }
        }
    }
}
