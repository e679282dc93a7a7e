//! Line charts as SVG, drawn with `plotters` (SVG backend only, no font
//! libraries: text goes into the file as `<text>` and the viewer's fonts
//! draw it). A figure is a grid of panels, each with axes, a mesh, a legend
//! and one line with markers per series; the callers (`e2e::report`) only
//! describe panels, so the plotting library stays behind this module.

use plotters::coord::Shift;
use plotters::prelude::*;

/// One line of a panel.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Stroke colour, `#rrggbb` (anything else draws black).
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

const PANEL_W: u32 = 460;
const PANEL_H: u32 = 370;
const HEADER: u32 = 34;

/// Renders `panels` in a grid of `columns` under a `title`, as an SVG document.
pub fn figure(title: &str, panels: &[Panel], columns: usize) -> String {
    let columns = columns.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(columns).max(1);
    let size = (PANEL_W * columns as u32, HEADER + PANEL_H * rows as u32);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        if let Err(error) = draw(&root, title, panels, rows, columns) {
            tracing::warn!("drawing the figure {title:?}: {error}");
        }
        if let Err(error) = root.present() {
            tracing::warn!("writing the figure {title:?}: {error}");
        }
    }
    out
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    panels: &[Panel],
    rows: usize,
    columns: usize,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let body = root.titled(title, ("sans-serif", 17).into_font().style(FontStyle::Bold))?;
    for (panel, area) in panels.iter().zip(body.split_evenly((rows, columns))) {
        draw_panel(&area, panel)?;
    }
    Ok(())
}

/// `#rrggbb` as a colour; black otherwise.
fn parse_color(text: &str) -> RGBColor {
    let hex = text.strip_prefix('#').unwrap_or("");
    let byte = |i: usize| {
        hex.get(i..i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
    };
    match (hex.len(), byte(0), byte(2), byte(4)) {
        (6, Some(r), Some(g), Some(b)) => RGBColor(r, g, b),
        _ => BLACK,
    }
}

/// The data ranges of a panel: x from 0 (or the categories), y from 0 (or
/// the lowest power of ten on a log axis) up to round values.
fn ranges(panel: &Panel) -> ((f64, f64), (f64, f64)) {
    let points: Vec<(f64, f64)> = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!panel.log_y || *y > 0.0))
        .collect();
    let x = match &panel.x_categories {
        Some(names) => (-0.3, names.len().max(1) as f64 - 0.7),
        None => {
            let hi = points.iter().map(|p| p.0).fold(0.0, f64::max);
            let ticks = nice_ticks(0.0, if hi > 0.0 { hi } else { 1.0 }, 5);
            (0.0, *ticks.last().unwrap_or(&1.0))
        }
    };
    let y = if panel.log_y {
        let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let hi = points.iter().map(|p| p.1).fold(0.0, f64::max);
        let (lo, hi) = if lo.is_finite() && hi > 0.0 {
            (lo, hi)
        } else {
            (1.0, 10.0)
        };
        let ticks = log_ticks(lo, hi);
        (
            *ticks.first().unwrap_or(&1.0),
            *ticks.last().unwrap_or(&10.0),
        )
    } else {
        let mut hi = points.iter().map(|p| p.1).fold(0.0, f64::max);
        if panel.diagonal {
            hi = hi.max(x.1);
        }
        let ticks = nice_ticks(0.0, if hi > 0.0 { hi } else { 1.0 }, 5);
        (0.0, *ticks.last().unwrap_or(&1.0))
    };
    (x, y)
}

/// The x tick text: a category name at whole numbers, else the value.
fn x_tick(panel: &Panel, v: f64) -> String {
    match &panel.x_categories {
        Some(names) => {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        }
        None => tick_label(v),
    }
}

/// Draws one panel; the y axis type differs (linear or log), the rest not.
macro_rules! draw_chart {
    ($area:expr, $panel:expr, $x:expr, $y:expr) => {{
        let panel: &Panel = $panel;
        let mut chart = ChartBuilder::on($area)
            .caption(
                &panel.title,
                ("sans-serif", 14).into_font().style(FontStyle::Bold),
            )
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d($x, $y)?;
        let categories = panel.x_categories.as_ref().map_or(0, Vec::len);
        let x_format = |v: &f64| x_tick(panel, *v);
        let y_format = |v: &f64| tick_label(*v);
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(panel.x_label.as_str())
            .y_desc(panel.y_label.as_str())
            .x_label_formatter(&x_format)
            .y_label_formatter(&y_format)
            .light_line_style(RGBColor(0xee, 0xee, 0xee));
        if categories > 0 {
            mesh.x_labels(categories);
        }
        mesh.draw()?;
        if panel.diagonal {
            let (x_max, y_max) = (chart.x_range().end, chart.y_range().end);
            let end = x_max.min(y_max);
            chart.draw_series(DashedLineSeries::new(
                [(0.0, 0.0), (end, end)],
                2,
                3,
                RGBColor(0x99, 0x99, 0x99).into(),
            ))?;
        }
        for series in &panel.series {
            let points: Vec<(f64, f64)> = series
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite() && (!panel.log_y || *y > 0.0))
                .collect();
            if points.is_empty() {
                continue;
            }
            let color = parse_color(&series.color);
            let style = color.stroke_width(2);
            let drawn = if series.dashed {
                chart.draw_series(DashedLineSeries::new(points.clone(), 6, 4, style))?;
                chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))?
            } else {
                chart.draw_series(LineSeries::new(points, style).point_size(3))?
            };
            let dashed = series.dashed;
            drawn.label(series.name.as_str()).legend(move |(x, y)| {
                let end = if dashed { x + 10 } else { x + 20 };
                PathElement::new(vec![(x, y), (end, y)], style)
            });
        }
        if !panel.series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(0x99, 0x99, 0x99))
                .draw()?;
        }
        Ok(())
    }};
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Panel) -> DrawResult<DB> {
    let ((x_lo, x_hi), (y_lo, y_hi)) = ranges(panel);
    if panel.log_y {
        draw_chart!(area, panel, x_lo..x_hi, (y_lo..y_hi).log_scale())
    } else {
        draw_chart!(area, panel, x_lo..x_hi, y_lo..y_hi)
    }
}

/// The text of every `<text>` element of `svg`, trimmed: what a reader
/// sees (titles, ticks, legend), for tests.
#[cfg(test)]
pub(crate) fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
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
    fn a_figure_has_a_legend_entry_per_series_and_escapes_text() {
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
                    points: vec![(0.1, 0.1), (f64::NAN, 1.0), (0.4, 0.3)],
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
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("64 B &lt;frames&gt;"), "titles are escaped");
        assert!(
            svg.contains("switchyard &amp; co"),
            "legend text is escaped"
        );
        let texts = texts(&svg);
        let has = |t: &str| texts.iter().any(|x| x == t);
        assert!(has("bridge") && has("x"), "{texts:?}");
        assert!(has("p50") && has("max"), "category ticks: {texts:?}");
        assert!(
            svg.contains("#0072B2") || svg.contains("#0072b2"),
            "series colour"
        );
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn colours_parse_from_hex() {
        assert_eq!(parse_color("#0072b2"), RGBColor(0x00, 0x72, 0xb2));
        assert_eq!(parse_color("black"), BLACK);
        assert_eq!(parse_color("#12345"), BLACK);
    }
}
