//! Line charts as plain SVG, written by hand: a figure is a grid of panels,
//! each with axes, ticks, a legend and one polyline (plus markers) per
//! series. No plotting dependency, and the files open in any browser.

use std::fmt::Write;

/// One line of a panel.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Stroke colour (any SVG colour).
    pub color: String,
    /// Dashed instead of solid.
    pub dashed: bool,
    /// Points in data coordinates, drawn in order.
    pub points: Vec<(f64, f64)>,
}

/// One chart of a figure.
#[derive(Clone, Debug, Default)]
pub struct Panel {
    /// Title above the chart.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Logarithmic y axis (latencies span orders of magnitude).
    pub log_y: bool,
    /// Names for x = 0, 1, 2, ... instead of numbers (e.g. percentiles).
    pub x_categories: Option<Vec<String>>,
    /// Draw y = x (delivered = offered) as a grey reference line.
    pub diagonal: bool,
}

/// Colours for series, in order; readable on white and for most colour-blind readers.
pub const PALETTE: [&str; 6] = [
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9",
];

const PANEL_W: f64 = 460.0;
const PANEL_H: f64 = 370.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
/// Below the plot: tick labels, the axis label and the legend (one line per
/// series, up to [`LEGEND_LINES`]), kept off the data.
const BOTTOM: f64 = 46.0 + LEGEND_LINE * LEGEND_LINES;
const LEGEND_LINE: f64 = 14.0;
const LEGEND_LINES: f64 = 4.0;
const HEADER: f64 = 34.0;

/// Renders `panels` in a grid of `columns` under a `title`, as an SVG document.
pub fn figure(title: &str, panels: &[Panel], columns: usize) -> String {
    let columns = columns.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(columns).max(1);
    let width = PANEL_W * columns as f64;
    let height = HEADER + PANEL_H * rows as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{:.1}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        width / 2.0,
        escape(title)
    );
    for (i, panel) in panels.iter().enumerate() {
        let x = PANEL_W * (i % columns) as f64;
        let y = HEADER + PANEL_H * (i / columns) as f64;
        render_panel(&mut out, panel, x, y);
    }
    out.push_str("</svg>\n");
    out
}

/// Maps data to pixels for one panel.
struct Frame {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    x_min: f64,
    x_max: f64,
    y_min: f64,
    y_max: f64,
    log_y: bool,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        self.x0 + (x - self.x_min) / (self.x_max - self.x_min) * self.w
    }

    fn py(&self, y: f64) -> f64 {
        let (v, lo, hi) = if self.log_y {
            (
                y.max(self.y_min).log10(),
                self.y_min.log10(),
                self.y_max.log10(),
            )
        } else {
            (y, self.y_min, self.y_max)
        };
        self.y0 + self.h - (v - lo) / (hi - lo) * self.h
    }
}

fn render_panel(out: &mut String, panel: &Panel, left: f64, top: f64) {
    let points: Vec<(f64, f64)> = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!panel.log_y || *y > 0.0))
        .collect();
    let (x_ticks, x_min, x_max) = match &panel.x_categories {
        Some(names) => {
            let n = names.len().max(1) as f64;
            ((0..names.len()).map(|i| i as f64).collect(), -0.3, n - 0.7)
        }
        None => {
            let hi = points.iter().map(|p| p.0).fold(0.0, f64::max);
            let ticks = nice_ticks(0.0, if hi > 0.0 { hi } else { 1.0 }, 5);
            let max = *ticks.last().unwrap_or(&1.0);
            (ticks, 0.0, max)
        }
    };
    let (y_ticks, y_min, y_max) = if panel.log_y {
        let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let hi = points.iter().map(|p| p.1).fold(0.0, f64::max);
        let (lo, hi) = if lo.is_finite() && hi > 0.0 {
            (lo, hi)
        } else {
            (1.0, 10.0)
        };
        let ticks = log_ticks(lo, hi);
        let min = *ticks.first().unwrap_or(&1.0);
        let max = *ticks.last().unwrap_or(&10.0);
        (ticks, min, max)
    } else {
        let mut hi = points.iter().map(|p| p.1).fold(0.0, f64::max);
        if panel.diagonal {
            hi = hi.max(x_max);
        }
        let ticks = nice_ticks(0.0, if hi > 0.0 { hi } else { 1.0 }, 5);
        let max = *ticks.last().unwrap_or(&1.0);
        (ticks, 0.0, max)
    };
    let f = Frame {
        x0: left + LEFT,
        y0: top + TOP,
        w: PANEL_W - LEFT - RIGHT,
        h: PANEL_H - TOP - BOTTOM,
        x_min,
        x_max,
        y_min,
        y_max,
        log_y: panel.log_y,
    };
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
        f.x0 + f.w / 2.0,
        top + 20.0,
        escape(&panel.title)
    );
    let _ = writeln!(
        out,
        r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
        f.x0, f.y0, f.w, f.h
    );
    for &t in &y_ticks {
        let y = f.py(t);
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            f.x0,
            f.x0 + f.w,
            f.x0 - 5.0,
            y + 4.0,
            tick_label(t)
        );
    }
    for (i, &t) in x_ticks.iter().enumerate() {
        let x = f.px(t);
        let label = match &panel.x_categories {
            Some(names) => escape(&names[i]),
            None => tick_label(t),
        };
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            f.y0,
            f.y0 + f.h,
            f.y0 + f.h + 15.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        f.x0 + f.w / 2.0,
        f.y0 + f.h + 33.0,
        escape(&panel.x_label)
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        left + 16.0,
        f.y0 + f.h / 2.0,
        escape(&panel.y_label)
    );
    if panel.diagonal {
        let end = x_max.min(y_max);
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#999" stroke-dasharray="2,3"/>"##,
            f.px(0.0),
            f.py(0.0),
            f.px(end),
            f.py(end)
        );
    }
    for series in &panel.series {
        let pts: Vec<String> = series
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!panel.log_y || *y > 0.0))
            .map(|&(x, y)| format!("{:.1},{:.1}", f.px(x), f.py(y)))
            .collect();
        if pts.is_empty() {
            continue;
        }
        let dash = if series.dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
            pts.join(" "),
            escape(&series.color)
        );
        for p in &pts {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                out,
                r#"<circle cx="{x}" cy="{y}" r="3" fill="{}"/>"#,
                escape(&series.color)
            );
        }
    }
    for (i, series) in panel.series.iter().enumerate() {
        let y = f.y0 + f.h + 52.0 + LEGEND_LINE * i as f64;
        let dash = if series.dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            f.x0 + 8.0,
            y - 4.0,
            f.x0 + 28.0,
            y - 4.0,
            escape(&series.color),
            f.x0 + 32.0,
            y,
            escape(&series.name)
        );
    }
}

/// About `count` round tick values (1, 2 or 5 times a power of ten apart)
/// from `lo` up to at least `hi`.
pub fn nice_ticks(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    let span = (hi - lo).abs().max(f64::MIN_POSITIVE);
    let raw = span / count.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let mantissa = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|m| m * magnitude >= raw)
        .unwrap_or(10.0);
    let step = mantissa * magnitude;
    // Tick n is n * mantissa * magnitude; dividing by 1/magnitude when it is
    // below 1 keeps 0.6 from printing as 0.6000000000000001.
    let value = |n: f64| {
        if magnitude < 1.0 {
            n * mantissa / (1.0 / magnitude).round()
        } else {
            n * mantissa * magnitude
        }
    };
    let first = (lo / step).floor();
    let mut ticks = Vec::new();
    let mut k = 0.0;
    while ticks.last().is_none_or(|t: &f64| *t < hi - step * 1e-9) && k < 1000.0 {
        ticks.push(value(first + k));
        k += 1.0;
    }
    ticks
}

/// Powers of ten from below `lo` to above `hi` (at least two).
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let lo = lo.max(1e-9).log10().floor() as i32;
    let hi = (hi.max(1e-9).log10().ceil() as i32).max(lo + 1);
    (lo..=hi).map(|e| 10f64.powi(e)).collect()
}

/// A tick value with no more digits than it needs.
fn tick_label(v: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else if v.abs() >= 1e6 {
        format!("{}M", tick_label(v / 1e6))
    } else if v.abs() >= 1e4 {
        format!("{}k", tick_label(v / 1e3))
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Escapes text for SVG.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(nice_ticks(0.0, 0.83, 5), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(
            nice_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        let t = nice_ticks(0.0, 7.3, 4);
        assert_eq!(t, vec![0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(log_ticks(3.2, 480.0), vec![1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(log_ticks(10.0, 10.0), vec![10.0, 100.0]);
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(0.2), "0.2");
        assert_eq!(tick_label(0.6000000000000001), "0.6");
        assert_eq!(tick_label(1000.0), "1000");
        assert_eq!(tick_label(10_000.0), "10k");
        assert_eq!(tick_label(2_500_000.0), "2.5M");
        assert_eq!(tick_label(2.5), "2.5");
    }

    #[test]
    fn a_figure_has_one_line_per_series_and_escapes_text() {
        let panel = Panel {
            title: "64 B <frames>".into(),
            x_label: "offered Mpps".into(),
            y_label: "delivered Mpps".into(),
            diagonal: true,
            series: vec![
                Series {
                    name: "bridge".into(),
                    color: PALETTE[0].into(),
                    dashed: false,
                    points: vec![(0.1, 0.1), (0.5, 0.45)],
                },
                Series {
                    name: "switchyard & co".into(),
                    color: PALETTE[1].into(),
                    dashed: true,
                    points: vec![(0.1, 0.1), (f64::NAN, 1.0)],
                },
            ],
            ..Panel::default()
        };
        let latency = Panel {
            log_y: true,
            x_categories: Some(vec!["p50".into(), "max".into()]),
            series: vec![Series {
                name: "x".into(),
                color: "black".into(),
                dashed: false,
                points: vec![(0.0, 5.0), (1.0, 500.0)],
            }],
            ..Panel::default()
        };
        let svg = figure("t", &[panel, latency], 2);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("64 B &lt;frames&gt;"));
        assert!(svg.contains("switchyard &amp; co"));
        assert!(svg.contains(">p50<"));
        assert!(!svg.contains("NaN"));
    }
}
