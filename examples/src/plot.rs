//! Line charts written as SVG with plotters: one [`Chart`] per panel, one or more panels side by
//! side per file.
//!
//! Only plotters' `svg_backend` and `line_series` features are enabled, so nothing here needs
//! system fonts: the SVG names a generic `sans-serif` family and the viewer picks the font.

use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::Result;

/// Colour-blind-safe colours (Okabe and Ito), in the order series get them.
const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
];

/// Width and height of one panel, in pixels.
const PANEL_SIZE: (u32, u32) = (560, 400);

/// One line of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The legend entry.
    pub label: String,
    /// (x, y) points; non-finite values (and, on a log scale, values <= 0) are skipped.
    pub points: Vec<(f64, f64)>,
    /// Index into the palette: series that belong together share a colour.
    pub color: usize,
    /// Dashed instead of solid (used for training curves next to solid test curves).
    pub dashed: bool,
    /// Mark each point with a dot (for short series, such as one value per layer).
    pub markers: bool,
    /// Join the points with a line (false for a lone marked point).
    pub line: bool,
}

impl Series {
    /// A solid line in palette colour `color`.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>, color: usize) -> Self {
        Series {
            label: label.into(),
            points,
            color,
            dashed: false,
            markers: false,
            line: true,
        }
    }

    /// A single marked point, such as a minimum.
    pub fn point(label: impl Into<String>, point: (f64, f64), color: usize) -> Self {
        Series {
            line: false,
            markers: true,
            ..Series::new(label, vec![point], color)
        }
    }

    /// The same series, dashed.
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }

    /// The same series, with a dot on each point.
    pub fn with_markers(mut self) -> Self {
        self.markers = true;
        self
    }
}

/// Where a chart's legend goes (chosen so that it does not hide the lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Legend {
    /// Top right corner.
    UpperRight,
    /// Top left corner.
    UpperLeft,
    /// Bottom right corner.
    LowerRight,
    /// Bottom left corner.
    LowerLeft,
    /// No legend (for a panel whose lines are named in the panel beside it).
    Hidden,
}

impl Legend {
    fn position(self) -> SeriesLabelPosition {
        match self {
            Legend::UpperRight => SeriesLabelPosition::UpperRight,
            Legend::UpperLeft => SeriesLabelPosition::UpperLeft,
            Legend::LowerRight => SeriesLabelPosition::LowerRight,
            Legend::LowerLeft => SeriesLabelPosition::LowerLeft,
            Legend::Hidden => unreachable!("a hidden legend is not drawn"),
        }
    }
}

/// One panel: a title, axis labels, the lines.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// Printed above the panel.
    pub title: String,
    /// Horizontal axis description.
    pub x_label: String,
    /// Vertical axis description.
    pub y_label: String,
    /// A logarithmic vertical axis, for values that span decades.
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
    /// Where the legend goes.
    pub legend: Legend,
    /// Extend the vertical axis on the legend's side (top or bottom), so that the legend
    /// sits in empty space instead of on the lines.
    pub legend_room: bool,
}

impl Chart {
    /// An empty chart with a linear vertical axis and the legend at the top right.
    pub fn new(title: impl Into<String>, x_label: &str, y_label: &str) -> Self {
        Chart {
            title: title.into(),
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            log_y: false,
            series: Vec::new(),
            legend: Legend::UpperRight,
            legend_room: false,
        }
    }

    /// The same chart with a logarithmic vertical axis.
    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }

    /// The same chart with its legend elsewhere.
    pub fn legend(mut self, legend: Legend) -> Self {
        self.legend = legend;
        self
    }

    /// The same chart with empty space for the legend (see [`Chart::legend_room`]).
    pub fn with_legend_room(mut self) -> Self {
        self.legend_room = true;
        self
    }

    /// The same chart with one more line.
    pub fn with(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// The points that can be drawn: finite, and positive on a log axis.
    fn drawable(&self, series: &Series) -> Vec<(f64, f64)> {
        series
            .points
            .iter()
            .copied()
            .filter(|&(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || y > 0.0))
            .collect()
    }

    /// The ranges of all drawable points, padded so no line sits on the frame.
    fn ranges(&self) -> (Range<f64>, Range<f64>) {
        let points: Vec<(f64, f64)> = self.series.iter().flat_map(|s| self.drawable(s)).collect();
        let (mut x_min, mut x_max) = min_max(points.iter().map(|p| p.0)).unwrap_or((0.0, 1.0));
        let (mut y_min, mut y_max) = min_max(points.iter().map(|p| p.1)).unwrap_or((0.1, 1.0));
        if x_max <= x_min {
            (x_min, x_max) = (x_min - 0.5, x_max + 0.5);
        }
        // Padding below and above, as factors (log axis) or fractions of the span (linear).
        let (below, above) = match (self.legend_room, self.legend) {
            (true, Legend::LowerLeft | Legend::LowerRight) => (30.0, 2.0),
            (true, Legend::UpperLeft | Legend::UpperRight) => (2.0, 30.0),
            _ => (2.0, 2.0),
        };
        if self.log_y {
            // At least a decade shown in all.
            (y_min, y_max) = (y_min / below, (y_max * above).max(y_min * 10.0));
        } else {
            let span = if y_max > y_min { y_max - y_min } else { 10.0 };
            let fraction = |factor: f64| if factor > 2.0 { 0.35 } else { 0.05 };
            (y_min, y_max) = (
                y_min - fraction(below) * span,
                y_max + fraction(above) * span,
            );
        }
        (x_min..x_max, y_min..y_max)
    }
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Writes `charts` side by side into one SVG file.
pub fn write_svg(path: &Path, charts: &[Chart]) -> Result<()> {
    write_svg_grid(path, charts, charts.len())
}

/// Writes `charts` into one SVG file as a grid, `columns` panels per row, row by row.
pub fn write_svg_grid(path: &Path, charts: &[Chart], columns: usize) -> Result<()> {
    let columns = columns.clamp(1, charts.len().max(1));
    let rows = charts.len().div_ceil(columns).max(1);
    let size = (PANEL_SIZE.0 * columns as u32, PANEL_SIZE.1 * rows as u32);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((rows, columns));
    for (panel, chart) in panels.iter().zip(charts) {
        let (x_range, y_range) = chart.ranges();
        if chart.log_y {
            draw_panel(panel, chart, x_range, y_range.log_scale(), &|y| {
                log_tick(*y)
            })?;
        } else {
            let span = y_range.end - y_range.start;
            draw_panel(panel, chart, x_range, y_range, &move |y| {
                linear_tick(*y, span)
            })?;
        }
    }
    root.present()?;
    Ok(())
}

/// Log-axis tick labels: plain numbers from 0.001 to 1000 ("0.01", "2", "300"), powers of ten
/// beyond ("1e-9", "1e8").
fn log_tick(y: f64) -> String {
    if (1e-3..1e4).contains(&y.abs()) {
        let text = format!("{y:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{y:.0e}")
    }
}

/// Tick labels with as many decimals as the axis's span needs.
fn linear_tick(y: f64, span: f64) -> String {
    let decimals = if span >= 10.0 {
        0
    } else if span >= 1.0 {
        1
    } else {
        2
    };
    format!("{y:.decimals$}")
}

/// Draws one chart whatever its vertical coordinate (linear or log).
fn draw_panel<DB, Y>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    chart: &Chart,
    x_range: Range<f64>,
    y_spec: Y,
    y_format: &dyn Fn(&f64) -> String,
) -> Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut context = ChartBuilder::on(area)
        .caption(&chart.title, ("sans-serif", 18))
        .margin(12)
        .margin_right(24) // room for the last x tick label
        .x_label_area_size(42)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range, y_spec)
        .map_err(|e| e.to_string())?;
    context
        .configure_mesh()
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(y_format)
        .light_line_style(WHITE.mix(0.0))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for series in &chart.series {
        let color = PALETTE[series.color % PALETTE.len()];
        let style = color.stroke_width(2);
        let points = chart.drawable(series);
        if series.line {
            let legend = if series.dashed {
                context
                    .draw_series(DashedLineSeries::new(points.clone(), 6, 4, style))
                    .map_err(|e| e.to_string())?
            } else {
                context
                    .draw_series(LineSeries::new(points.clone(), style))
                    .map_err(|e| e.to_string())?
            };
            // The legend sample: two segments, with a gap between them when the line is
            // dashed (coordinates relative to the legend entry's origin).
            let gap = if series.dashed { 4 } else { 0 };
            legend.label(&series.label).legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (7, 0)], style)
                    + PathElement::new(vec![(7 + gap, 0), (18, 0)], style)
            });
        }
        if series.markers {
            let dots = context
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| e.to_string())?;
            if !series.line {
                dots.label(&series.label)
                    .legend(move |(x, y)| Circle::new((x + 9, y), 3, color.filled()));
            }
        }
    }
    if chart.legend == Legend::Hidden {
        return Ok(());
    }
    context
        .configure_series_labels()
        .position(chart.legend.position())
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}
