//! Line charts as inline SVG, rendered on the server: no JavaScript, no chart library. Pure.
//!
//! The y axis starts at zero and ends at a round number above the largest value (1, 2 or 5
//! times a power of ten); the x axis is the whole range, so an empty stretch shows as empty. A
//! gap longer than two and a half resolutions (the app was asleep, the server was down) breaks
//! the line instead of drawing a slope across it. Every text is escaped; numbers are formatted
//! here, never taken from input.

use chrono::{DateTime, Utc};

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 46.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 22.0;

/// One line of a chart: its label (shown in a legend when a chart has several) and its points,
/// sorted by time.
#[derive(Debug, Clone)]
pub struct Line<'a> {
    pub label: &'a str,
    pub points: &'a [(i64, f64)],
}

/// One chart: a title, the time range `[from, to]` (Unix seconds), the series' resolution and
/// its lines (at most three get their own colour).
#[derive(Debug, Clone)]
pub struct Chart<'a> {
    pub title: &'a str,
    /// A stable name for tests and styling (`host-cpu`, `app-requests`).
    pub name: &'a str,
    pub from: i64,
    pub to: i64,
    pub resolution_secs: i64,
    pub lines: Vec<Line<'a>>,
    /// Shown in place of the line when there are no points.
    pub empty_text: &'a str,
}

/// The smallest of 1, 2, 5 × 10^k at or above `value` (and at least 1).
pub fn nice_ceiling(value: f64) -> f64 {
    if !value.is_finite() || value <= 1.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|step| step * magnitude).find(|candidate| *candidate >= value).unwrap_or(10.0 * magnitude)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A number for an axis label: no more digits than it needs.
fn label(value: f64) -> String {
    if value >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn time_label(at: i64, span: i64) -> String {
    let Some(time) = DateTime::<Utc>::from_timestamp(at, 0) else { return String::new() };
    if span > 2 * 24 * 3600 {
        time.format("%m-%d %H:%M").to_string()
    } else {
        time.format("%H:%M").to_string()
    }
}

/// The polyline segments of `points`, each a list of (x, y) in the chart's pixels.
pub fn segments(points: &[(i64, f64)], from: i64, to: i64, resolution_secs: i64, y_max: f64) -> Vec<Vec<(f64, f64)>> {
    let span = (to - from).max(1) as f64;
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let max_gap = (resolution_secs as f64 * 2.5).max(1.0);
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut previous_at: Option<i64> = None;
    for (at, value) in points.iter().filter(|(at, value)| (from..=to).contains(at) && value.is_finite()) {
        if previous_at.is_none_or(|before| (at - before) as f64 > max_gap) {
            out.push(Vec::new());
        }
        let x = LEFT + (at - from) as f64 / span * plot_width;
        let y = TOP + plot_height - (value.max(0.0) / y_max).min(1.0) * plot_height;
        out.last_mut().expect("a segment was started").push(((x * 10.0).round() / 10.0, (y * 10.0).round() / 10.0));
        previous_at = Some(*at);
    }
    out
}

/// The chart as an `<svg>` element.
pub fn line_chart(chart: &Chart<'_>) -> String {
    let in_range: Vec<Vec<(i64, f64)>> = chart
        .lines
        .iter()
        .map(|line| line.points.iter().copied().filter(|(at, v)| (chart.from..=chart.to).contains(at) && v.is_finite()).collect())
        .collect();
    let n_points: usize = in_range.iter().map(Vec::len).sum();
    let largest = in_range.iter().flatten().map(|(_, v)| *v).fold(0.0, f64::max);
    let y_max = nice_ceiling(largest);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{title}\" data-chart=\"{name}\" data-points=\"{n}\" xmlns=\"http://www.w3.org/2000/svg\">",
        title = escape(chart.title),
        name = escape(chart.name),
        n = n_points,
    );
    svg.push_str(&format!("<text class=\"title\" x=\"{LEFT}\" y=\"15\">{}</text>", escape(chart.title)));
    let plot_height = HEIGHT - TOP - BOTTOM;
    for step in 0..=4 {
        let y = TOP + plot_height * f64::from(step) / 4.0;
        let value = y_max * f64::from(4 - step) / 4.0;
        svg.push_str(&format!("<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/>", WIDTH - RIGHT));
        svg.push_str(&format!("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", LEFT - 4.0, y + 4.0, label(value)));
    }
    let span = chart.to - chart.from;
    svg.push_str(&format!("<text x=\"{LEFT}\" y=\"{}\">{}</text>", HEIGHT - 6.0, time_label(chart.from, span)));
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        WIDTH - RIGHT,
        HEIGHT - 6.0,
        time_label(chart.to, span)
    ));
    if n_points == 0 {
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            WIDTH / 2.0,
            TOP + plot_height / 2.0,
            escape(chart.empty_text)
        ));
    }
    for (line_idx, (line, points)) in chart.lines.iter().zip(&in_range).enumerate() {
        let class = format!("line line-{}", line_idx.min(2));
        for segment in segments(points, chart.from, chart.to, chart.resolution_secs, y_max) {
            let coordinates: Vec<String> = segment.iter().map(|(x, y)| format!("{x},{y}")).collect();
            svg.push_str(&format!("<polyline class=\"{class}\" points=\"{}\"/>", coordinates.join(" ")));
            // A dot at each segment's end: the newest value, and a lone sample, stay visible.
            if let Some((x, y)) = segment.last() {
                svg.push_str(&format!("<circle class=\"dot line-{}\" cx=\"{x}\" cy=\"{y}\" r=\"2.5\"/>", line_idx.min(2)));
            }
        }
        if chart.lines.len() > 1 {
            let x = WIDTH - RIGHT - 60.0 * (chart.lines.len() - line_idx) as f64;
            svg.push_str(&format!("<text class=\"legend line-{}\" x=\"{x}\" y=\"15\">— {}</text>", line_idx.min(2), escape(line.label)));
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_ends_at_a_round_number() {
        for (value, expected) in [
            (0.0, 1.0),
            (0.3, 1.0),
            (1.5, 2.0),
            (2.0, 2.0),
            (3.2, 5.0),
            (7.0, 10.0),
            (42.0, 50.0),
            (100.0, 100.0),
            (101.0, 200.0),
            (f64::NAN, 1.0),
        ] {
            assert_eq!(nice_ceiling(value), expected, "{value}");
        }
    }

    #[test]
    fn gaps_break_the_line_and_points_outside_the_range_are_left_out() {
        let points = [(-10, 1.0), (0, 0.0), (10, 1.0), (20, 2.0), (100, 2.0), (110, f64::NAN), (3601, 1.0)];
        let lines = segments(&points, 0, 3600, 10, 2.0);
        assert_eq!(lines.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 1], "a 80 s gap breaks the line");
        // x runs from 46 to 470 over the hour; y from 158 (zero) up to 24 (the top).
        assert_eq!(lines[0][0], (46.0, 158.0));
        assert_eq!(lines[0][2], (48.4, 24.0));
    }

    #[test]
    fn a_chart_escapes_its_title_and_says_when_it_is_empty() {
        let svg = line_chart(&Chart {
            title: "<b>cpu</b>",
            name: "host-cpu",
            from: 0,
            to: 3600,
            resolution_secs: 10,
            lines: vec![Line { label: "cpu", points: &[] }],
            empty_text: "no data",
        });
        assert!(svg.starts_with("<svg class=\"chart\"") && svg.ends_with("</svg>"));
        assert!(svg.contains("&lt;b&gt;cpu&lt;/b&gt;") && !svg.contains("<b>"));
        assert!(svg.contains("data-points=\"0\"") && svg.contains("no data") && !svg.contains("<polyline"));
        let (p50, p95) = ([(0, 30.0), (10, 40.0)], [(0, 45.0)]);
        let svg = line_chart(&Chart {
            title: "latency",
            name: "app-latency",
            from: 0,
            to: 3600,
            resolution_secs: 10,
            lines: vec![Line { label: "p50", points: &p50 }, Line { label: "p95", points: &p95 }],
            empty_text: "no data",
        });
        assert!(
            svg.contains("data-points=\"3\"") && svg.contains("<polyline class=\"line line-0\" points=\"46,") && svg.contains(">50</text>"),
            "{svg}"
        );
        assert!(svg.contains("<polyline class=\"line line-1\"") && svg.contains("— p95"), "{svg}");
    }
}
