//! Every chart of the reports, drawn with plotters into SVG strings: line charts with error
//! bars (bench figures over the x axis; a run's latency percentiles) and a timeline of
//! per-row state spans (a run's node lifecycles). Callers describe *what* to draw
//! ([`LineChart`], [`Timeline`]); this module alone knows *how*.
//!
//! Text is laid out by the SVG viewer (plotters' built-in estimate, no font library), so the
//! output is the same on every machine and `orchestrator report` reproduces it byte for byte.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

#[derive(Debug, thiserror::Error)]
#[error("drawing chart `{title}`: {message}")]
pub struct ChartError {
    pub title: String,
    pub message: String,
}

/// A line chart: one polyline per series, a marker per point, and an error bar per point
/// that has a low and a high value. The legend names each series once, right of the plot.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Tick positions on the x axis with their labels.
    pub x_ticks: Vec<(f64, String)>,
    /// Start the y axis at zero (when every value is non-negative).
    pub y_from_zero: bool,
    pub series: Vec<Series>,
    /// A line of text under the chart (e.g. what the error bars mean).
    pub note: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    /// Index into the palette.
    pub color: usize,
    pub dashed: bool,
    pub marker: Marker,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    /// Error bar from `lo` to `hi`.
    pub bar: Option<(f64, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Triangle,
    Square,
    Cross,
}

impl Marker {
    pub fn nth(i: usize) -> Marker {
        [
            Marker::Circle,
            Marker::Triangle,
            Marker::Square,
            Marker::Cross,
        ][i % 4]
    }
}

/// Tableau 10: distinguishable, also in grey print.
const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

pub fn color(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

const WIDTH: u32 = 900;
const HEIGHT: u32 = 460;
const LEGEND_WIDTH: u32 = 230;

fn err<E: std::fmt::Debug>(title: &str) -> impl Fn(E) -> ChartError + '_ {
    move |e| ChartError {
        title: title.to_string(),
        message: format!("{e:?}"),
    }
}

/// A shaded span of a line chart's x axis, drawn behind the series with a label at its top
/// left (e.g. a network partition over time).
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub from: f64,
    pub to: f64,
    pub label: String,
}

/// Draws a line chart as an SVG document.
pub fn line_chart(c: &LineChart) -> Result<String, ChartError> {
    line_chart_with_bands(c, &[])
}

/// Draws a line chart with shaded x spans behind its series, as an SVG document.
pub fn line_chart_with_bands(c: &LineChart, bands: &[Band]) -> Result<String, ChartError> {
    let mut svg = String::new();
    {
        let height = HEIGHT.max(130 + 22 * c.series.len() as u32);
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        draw_line_chart(&root, c, bands).map_err(err(&c.title))?;
        root.present().map_err(err(&c.title))?;
    }
    Ok(svg)
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw_line_chart(
    root: &DrawingArea<SVGBackend, Shift>,
    c: &LineChart,
    bands: &[Band],
) -> DrawResult {
    root.fill(&WHITE)?;
    let (w, _) = root.dim_in_pixel();
    let (plot_area, legend_area) = root.split_horizontally(w - LEGEND_WIDTH);

    let xs = c
        .x_ticks
        .iter()
        .map(|t| t.0)
        .chain(c.series.iter().flat_map(|s| s.points.iter().map(|p| p.x)));
    let (x0, x1) = padded(min_max(xs).unwrap_or((0.0, 1.0)), 0.06);
    let ys = c.series.iter().flat_map(|s| {
        s.points.iter().flat_map(|p| {
            [Some(p.y), p.bar.map(|b| b.0), p.bar.map(|b| b.1)]
                .into_iter()
                .flatten()
        })
    });
    let (mut y0, y1) = padded(min_max(ys).unwrap_or((0.0, 1.0)), 0.08);
    if c.y_from_zero && y0 < 0.0 && min_max_series(c).is_none_or(|(lo, _)| lo >= 0.0) {
        y0 = 0.0;
    }

    let mut chart = ChartBuilder::on(&plot_area)
        .caption(&c.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(8)
        .y_desc(&c.y_label)
        .x_desc(&c.x_label)
        .y_label_formatter(&|v| tick_label(*v))
        .light_line_style(RGBColor(246, 246, 246))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()?;

    // Bands under everything else, clipped to the plot.
    for b in bands {
        let (from, to) = (b.from.max(x0), b.to.min(x1));
        if from >= to {
            continue;
        }
        chart.draw_series(std::iter::once(Rectangle::new(
            [(from, y0), (to, y1)],
            RED.mix(0.10).filled(),
        )))?;
        let top = chart.backend_coord(&(from, y1));
        root.draw(&Text::new(
            b.label.clone(),
            (top.0 + 4, top.1 + 4),
            ("sans-serif", 12).into_font().color(&RGBColor(160, 40, 30)),
        ))?;
    }

    // x ticks where the data is, with the caller's labels.
    let grid = RGBColor(225, 225, 225);
    for (x, label) in &c.x_ticks {
        let top = chart.backend_coord(&(*x, y1));
        let bottom = chart.backend_coord(&(*x, y0));
        root.draw(&PathElement::new(vec![top, bottom], grid.stroke_width(1)))?;
        root.draw(&PathElement::new(
            vec![bottom, (bottom.0, bottom.1 + 5)],
            BLACK.stroke_width(1),
        ))?;
        root.draw(&Text::new(
            label.clone(),
            (bottom.0, bottom.1 + 8),
            ("sans-serif", 13)
                .into_font()
                .into_text_style(root)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
    }

    for s in &c.series {
        let col = color(s.color);
        let line = col.stroke_width(2);
        let pts: Vec<(f64, f64)> = s.points.iter().map(|p| (p.x, p.y)).collect();
        if s.dashed {
            chart.draw_series(DashedLineSeries::new(pts.clone(), 7, 4, line))?;
        } else {
            chart.draw_series(LineSeries::new(pts.clone(), line))?;
        }
        chart.draw_series(s.points.iter().filter_map(|p| {
            p.bar
                .map(|(lo, hi)| ErrorBar::new_vertical(p.x, lo, p.y, hi, col.stroke_width(1), 8))
        }))?;
        for p in &pts {
            draw_marker(&mut chart, s.marker, *p, col)?;
        }
    }

    // Legend: one entry per series.
    let entry_h = 22;
    legend_area.draw(&Text::new(
        "series",
        (10, 38),
        ("sans-serif", 13)
            .into_font()
            .style(FontStyle::Bold)
            .into_text_style(&legend_area),
    ))?;
    for (i, s) in c.series.iter().enumerate() {
        let y = 62 + i as i32 * entry_h;
        let col = color(s.color);
        let sample = vec![(10, y), (44, y)];
        if s.dashed {
            legend_area.draw(&plotters::element::DashedPathElement::new(
                sample,
                7,
                4,
                col.stroke_width(2),
            ))?;
        } else {
            legend_area.draw(&PathElement::new(sample, col.stroke_width(2)))?;
        }
        draw_marker_px(&legend_area, s.marker, (27, y), col)?;
        legend_area.draw(&Text::new(
            s.label.clone(),
            (52, y),
            ("sans-serif", 13)
                .into_font()
                .into_text_style(&legend_area)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    if let Some(note) = &c.note {
        // Under the legend, one clause a line.
        let top = 62 + c.series.len() as i32 * entry_h + 14;
        for (i, line) in note.split("; ").enumerate() {
            legend_area.draw(&Text::new(
                line.to_string(),
                (10, top + i as i32 * 16),
                ("sans-serif", 12).into_font().color(&RGBColor(90, 90, 90)),
            ))?;
        }
    }
    Ok(())
}

fn draw_marker<DB: DrawingBackend>(
    chart: &mut ChartContext<
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    m: Marker,
    p: (f64, f64),
    col: RGBColor,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let px = chart.backend_coord(&p);
    let area = chart.plotting_area().strip_coord_spec();
    let (ox, oy) = (area.get_base_pixel().0, area.get_base_pixel().1);
    draw_marker_px(&area, m, (px.0 - ox, px.1 - oy), col)
}

fn draw_marker_px<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    m: Marker,
    (x, y): (i32, i32),
    col: RGBColor,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    match m {
        Marker::Circle => area.draw(&Circle::new((x, y), 4, col.filled()))?,
        Marker::Triangle => area.draw(&Polygon::new(
            vec![(x, y - 5), (x - 5, y + 4), (x + 5, y + 4)],
            col.filled(),
        ))?,
        Marker::Square => area.draw(&Rectangle::new(
            [(x - 4, y - 4), (x + 4, y + 4)],
            col.filled(),
        ))?,
        Marker::Cross => {
            area.draw(&PathElement::new(
                vec![(x - 4, y - 4), (x + 4, y + 4)],
                col.stroke_width(2),
            ))?;
            area.draw(&PathElement::new(
                vec![(x - 4, y + 4), (x + 4, y - 4)],
                col.stroke_width(2),
            ))?;
        }
    }
    Ok(())
}

fn min_max(v: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    v.filter(|x| x.is_finite()).fold(None, |acc, x| match acc {
        None => Some((x, x)),
        Some((lo, hi)) => Some((lo.min(x), hi.max(x))),
    })
}

fn min_max_series(c: &LineChart) -> Option<(f64, f64)> {
    min_max(c.series.iter().flat_map(|s| {
        s.points
            .iter()
            .flat_map(|p| [p.y, p.bar.map_or(p.y, |b| b.0)])
    }))
}

/// Widens a range by `frac` of its span on each side; a point range becomes ±10% (or ±1).
fn padded((lo, hi): (f64, f64), frac: f64) -> (f64, f64) {
    let span = hi - lo;
    if span <= f64::EPSILON * hi.abs().max(1.0) {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - d, hi + d);
    }
    (lo - span * frac, hi + span * frac)
}

/// Compact tick labels: `0.25`, `12`, `1.5k`.
pub fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a >= 10_000.0 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Rows of coloured spans over time (a Gantt chart): one row per node, one span per state.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub title: String,
    pub x_label: String,
    /// Row labels, top to bottom.
    pub rows: Vec<String>,
    /// (row, start, end, kind): `kind` indexes `kinds` (colour and legend).
    pub spans: Vec<(usize, f64, f64, usize)>,
    pub kinds: Vec<String>,
}

/// Draws a timeline as an SVG document.
pub fn timeline(t: &Timeline) -> Result<String, ChartError> {
    let mut svg = String::new();
    {
        let row_px = if t.rows.len() <= 30 {
            16
        } else if t.rows.len() <= 100 {
            7
        } else {
            3
        };
        let height = (110 + row_px * t.rows.len() as u32).max(90 + 22 * t.kinds.len() as u32);
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        draw_timeline(&root, t).map_err(err(&t.title))?;
        root.present().map_err(err(&t.title))?;
    }
    Ok(svg)
}

fn draw_timeline(root: &DrawingArea<SVGBackend, Shift>, t: &Timeline) -> DrawResult {
    root.fill(&WHITE)?;
    let (w, _) = root.dim_in_pixel();
    let (plot_area, legend_area) = root.split_horizontally(w - LEGEND_WIDTH);
    let x1 = t.spans.iter().map(|s| s.2).fold(0.0f64, f64::max).max(1.0);
    let n = t.rows.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(&t.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..x1 * 1.02, n..0.0)?;
    let rows = t.rows.clone();
    let label = move |v: &f64| {
        let i = v.floor();
        if (v - i - 0.5).abs() < 1e-9 || (*v - i).abs() < 1e-9 {
            rows.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_labels(10)
        .y_labels(t.rows.len().min(30))
        .x_desc(&t.x_label)
        .y_desc("node")
        .x_label_formatter(&|v| tick_label(*v))
        .y_label_formatter(&label)
        .light_line_style(RGBColor(246, 246, 246))
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 14))
        .draw()?;
    let gap = if t.rows.len() <= 100 { 0.15 } else { 0.0 };
    chart.draw_series(t.spans.iter().map(|&(row, a, b, kind)| {
        Rectangle::new(
            [(a, row as f64 + gap), (b.max(a), row as f64 + 1.0 - gap)],
            color(kind).filled(),
        )
    }))?;
    legend_area.draw(&Text::new(
        "state",
        (10, 38),
        ("sans-serif", 13)
            .into_font()
            .style(FontStyle::Bold)
            .into_text_style(&legend_area),
    ))?;
    for (i, k) in t.kinds.iter().enumerate() {
        let y = 62 + i as i32 * 22;
        legend_area.draw(&Rectangle::new(
            [(10, y - 6), (34, y + 6)],
            color(i).filled(),
        ))?;
        legend_area.draw(&Text::new(
            k.clone(),
            (42, y),
            ("sans-serif", 13)
                .into_font()
                .into_text_style(&legend_area)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_well_formed_svg_with_one_legend_entry_per_series() {
        let series = (0..3)
            .map(|i| Series {
                label: format!("series {i} <&>"),
                color: i,
                dashed: i % 2 == 1,
                marker: Marker::nth(i),
                points: vec![
                    Point {
                        x: 1.0,
                        y: i as f64,
                        bar: Some((i as f64 - 0.5, i as f64 + 0.5)),
                    },
                    Point {
                        x: 2.0,
                        y: i as f64 + 1.0,
                        bar: None,
                    },
                ],
            })
            .collect();
        let svg = line_chart(&LineChart {
            title: "t".into(),
            x_label: "hosts".into(),
            y_label: "ms".into(),
            x_ticks: vec![(1.0, "1".into()), (2.0, "2".into())],
            y_from_zero: true,
            series,
            note: Some("bars: interquartile range".into()),
        })
        .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert_eq!(svg.matches("series 1 &lt;&amp;&gt;").count(), 1);
        let plain = LineChart {
            title: "bands".into(),
            x_label: "s".into(),
            y_label: "n".into(),
            x_ticks: vec![(0.0, "0".into()), (10.0, "10".into())],
            y_from_zero: true,
            series: vec![],
            note: None,
        };
        let band = |from, to| Band {
            from,
            to,
            label: "cut".into(),
        };
        let banded = line_chart_with_bands(&plain, &[band(2.0, 5.0), band(50.0, 60.0)]).unwrap();
        // The band inside the axis is drawn and labelled; the one outside is not.
        assert_eq!(banded.matches(">\ncut\n</text>").count(), 1, "{banded}");
        assert!(banded.len() > line_chart(&plain).unwrap().len());
        let tl = timeline(&Timeline {
            title: "lifecycle".into(),
            x_label: "ms".into(),
            rows: vec!["0".into(), "1".into()],
            spans: vec![(0, 0.0, 5.0, 0), (1, 1.0, 3.0, 1)],
            kinds: vec!["starting".into(), "ready".into()],
        })
        .unwrap();
        assert!(tl.contains("<rect"));
    }

    #[test]
    fn tick_labels() {
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(0.5), "0.500");
        assert_eq!(tick_label(2.5), "2.50");
        assert_eq!(tick_label(25.0), "25.0");
        assert_eq!(tick_label(250.0), "250");
        assert_eq!(tick_label(25000.0), "25k");
    }
}
