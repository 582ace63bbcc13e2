//! Charts written as SVG with plotters: one [`Chart`] per panel, at most two panels per row
//! (see [`write_svg`]).
//!
//! A panel shows lines ([`Series::new`]), marked points ([`Series::point`]), shaded bands
//! ([`Series::band`]), histograms ([`Series::histogram`]), scatter points ([`Series::scatter`])
//! and reference lines ([`Series::hline`], [`Series::vline`]), on linear or logarithmic axes
//! ([`Chart::log_x`], [`Chart::log_y`]), optionally over a decision-region background
//! ([`Chart::heatmap`]).
//!
//! Only plotters' `svg_backend` and `line_series` features are enabled, so nothing here needs
//! system fonts: the SVG names a generic `sans-serif` family and the viewer picks the font.
//! Text sizes are therefore estimated here, from the glyph widths of DejaVu Sans (the widest
//! common sans-serif), so that text fits whichever font the viewer picks.
//!
//! Sizes are chosen for the guide, which shows a figure at most about 800 pixels wide: a
//! two-panel row is 1120 logical pixels wide, so it is shown at 800/1120 = 0.71 of its size,
//! and the sizes below (tick labels 18, titles 24 logical pixels) come out at 12.9 and 17.1
//! pixels there.
//!
//! Plotters' SVG backend rounds every coordinate to an integer. To place curves on a
//! quarter-pixel grid, everything is drawn four times (`SCALE`) larger than its logical size,
//! and the root `<svg>` element is then given the logical `width` and `height` with a `viewBox`
//! of the drawn size.

use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{
    KeyPointHint, KeyPointWeight, NoDefaultFormatting, Ranged, ValueFormatter,
};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

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

/// How many times larger than its logical size a figure is drawn, so that the integer
/// coordinates plotters writes fall on a 1/SCALE-pixel grid of the logical figure.
const SCALE: u32 = 4;

/// Width and height of one panel, in logical pixels.
const PANEL_SIZE: (u32, u32) = (560, 400);

/// The most panels per row [`write_svg`] puts side by side: the text sizes are chosen for a
/// row of two panels shown 800 pixels wide.
const MAX_COLUMNS: usize = 2;

// Text sizes, in logical pixels (the SVG's `font-size` divided by SCALE). At 800/1120 of the
// logical size (a two-panel row in the guide), 17 pixels come out at 12.1 pixels and 20 at 14.3.
/// Panel titles.
const TITLE_PX: f64 = 24.0;
/// The smallest a long title is shrunk to before it is wrapped onto a second line.
const TITLE_MIN_PX: f64 = 20.0;
/// Axis descriptions.
const DESC_PX: f64 = 20.0;
/// Tick labels.
const TICK_PX: f64 = 18.0;
/// Legend entries.
const LEGEND_PX: f64 = 18.0;
/// The smallest any text is shrunk to (a long legend entry or axis description).
const MIN_TEXT_PX: f64 = 17.0;
// A two-panel row (1120 pixels) shown 800 pixels wide: text at least 12 pixels, titles 14.
const _: () = assert!(MIN_TEXT_PX * 800.0 / 1120.0 >= 12.0 && TICK_PX >= MIN_TEXT_PX);
const _: () = assert!(TITLE_MIN_PX * 800.0 / 1120.0 >= 14.0);
/// Line height as a multiple of the text size.
const LINE_SPACING: f64 = 1.25;

// Layout, in logical pixels.
/// Space around a panel's content.
const MARGIN: f64 = 10.0;
/// Between the title and the plot.
const TITLE_GAP: f64 = 8.0;
/// Tick marks; plotters puts the tick labels twice this far from the axis.
const TICK_LEN: f64 = 5.0;
/// Between the tick labels and the axis description.
const DESC_GAP: f64 = 8.0;
/// Right of the plot, at least (room for half of the last x tick label).
const MIN_MARGIN_RIGHT: f64 = 16.0;
/// Between the legend box and the plot's frame.
const LEGEND_INSET: f64 = 8.0;
/// Inside the legend box, around its entries.
const LEGEND_PAD: f64 = 8.0;
/// Length of a legend entry's line sample.
const LEGEND_SAMPLE: f64 = 30.0;
/// Between a legend entry's sample and its text.
const LEGEND_GAP: f64 = 8.0;
/// The most ticks on an axis.
const MAX_TICKS: usize = 8;

// Marks, in logical pixels.
/// Width of lines.
const LINE_WIDTH: f64 = 2.25;
/// Dashes: drawn length, then gap.
const DASH: (f64, f64) = (7.0, 5.0);
/// Radius of markers.
const MARKER_RADIUS: f64 = 3.5;
/// Radius of scatter points, which have a darker edge.
const SCATTER_RADIUS: f64 = 4.0;
/// Opacity of a band's fill.
const BAND_OPACITY: f64 = 0.2;
/// How much of its palette colour a heatmap cell has (the rest is white).
const HEATMAP_TINT: f64 = 0.25;

/// What a [`Series`] draws.
#[derive(Clone, Debug, PartialEq)]
pub enum SeriesKind {
    /// Its points, joined by a line ([`Series::line`]) and/or marked ([`Series::markers`]).
    Line,
    /// A translucent band between a lower and an upper curve, given as `(x, low, high)`
    /// triples (the series' `points` are unused).
    Band(Vec<(f64, f64, f64)>),
    /// A histogram's step outline: `points` are its corners, from `(first edge, 0)` to
    /// `(last edge, 0)`; the vertical axis starts at zero.
    Histogram,
    /// Scatter points: markers with a darker edge, no line.
    Scatter,
}

/// One line (or band, histogram, set of points) of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The legend entry (none when empty).
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
    /// What is drawn: a line, a band, a histogram or scatter points.
    pub kind: SeriesKind,
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
            kind: SeriesKind::Line,
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

    /// A shaded band between a lower and an upper curve, such as the range of a metric over
    /// several seeds, from `(x, low, high)` triples. It is drawn as a translucent fill of palette
    /// colour `color`, under the lines (usually a [`Series::new`] median in the same colour),
    /// with a filled square as its legend sample. On a log axis a triple whose `high` is not
    /// positive is skipped, and a `low` that is not positive is drawn at the axis' bottom.
    pub fn band(
        label: impl Into<String>,
        points_low_high: Vec<(f64, f64, f64)>,
        color: usize,
    ) -> Self {
        Series {
            line: false,
            kind: SeriesKind::Band(points_low_high),
            ..Series::new(label, Vec::new(), color)
        }
    }

    /// A histogram of `values` as a step outline: `bins` equal bins over `range`, each at the
    /// height of its density (see [`histogram_density`]), so histograms of different sample
    /// sizes can share a panel (say, the activations of layers 1, 4, 7 and 10 of a network,
    /// each in its own colour). The panel's vertical axis starts at zero; use a linear one.
    pub fn histogram(
        label: impl Into<String>,
        values: &[f64],
        bins: usize,
        range: (f64, f64),
        color: usize,
    ) -> Self {
        let densities = histogram_density(values, bins, range);
        Series {
            kind: SeriesKind::Histogram,
            ..Series::new(label, histogram_outline(&densities, range), color)
        }
    }

    /// Scatter points in palette colour `color`, with a darker edge so that they stand out on
    /// a [`Chart::heatmap`] background tinted with the same colour.
    pub fn scatter(label: impl Into<String>, points: Vec<(f64, f64)>, color: usize) -> Self {
        Series {
            line: false,
            markers: true,
            kind: SeriesKind::Scatter,
            ..Series::new(label, points, color)
        }
    }

    /// A dashed horizontal reference line at height `y`, from `x_range.0` to `x_range.1`
    /// (give an empty label to leave it out of the legend).
    pub fn hline(label: impl Into<String>, y: f64, x_range: (f64, f64), color: usize) -> Self {
        Series::new(label, vec![(x_range.0, y), (x_range.1, y)], color).dashed()
    }

    /// A dashed vertical reference line at `x`, from `y_range.0` to `y_range.1` (give an
    /// empty label to leave it out of the legend).
    pub fn vline(label: impl Into<String>, x: f64, y_range: (f64, f64), color: usize) -> Self {
        Series::new(label, vec![(x, y_range.0), (x, y_range.1)], color).dashed()
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

/// The density of `values` in `bins` equal bins over `range` (`range.0 < range.1`): the
/// fraction of the finite values in each bin, divided by the bin's width, so that the densities
/// times the width sum to the fraction of the values inside `range` (1 when all are). A value
/// equal to `range.1` counts in the last bin; values outside `range` and non-finite values are
/// not counted in any bin. Empty when `bins` is 0 or `range` is empty.
pub fn histogram_density(values: &[f64], bins: usize, range: (f64, f64)) -> Vec<f64> {
    let (lo, hi) = range;
    if bins == 0 || !lo.is_finite() || !hi.is_finite() || lo >= hi {
        return Vec::new();
    }
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    let mut finite = 0usize;
    for &v in values.iter().filter(|v| v.is_finite()) {
        finite += 1;
        if (lo..=hi).contains(&v) {
            // The top edge belongs to the last bin; rounding may put a value just below an
            // edge in the bin above it, which is within floating-point noise.
            let bin = (((v - lo) / width) as usize).min(bins - 1);
            counts[bin] += 1;
        }
    }
    let total = finite.max(1) as f64;
    counts
        .into_iter()
        .map(|c| c as f64 / (total * width))
        .collect()
}

/// The corners of the step outline of `densities` over equal bins spanning `range`, from the
/// axis up the first edge, across each bin and down the last edge.
fn histogram_outline(densities: &[f64], range: (f64, f64)) -> Vec<(f64, f64)> {
    if densities.is_empty() {
        return Vec::new();
    }
    let width = (range.1 - range.0) / densities.len() as f64;
    let edge = |i: usize| range.0 + width * i as f64;
    let mut points = vec![(edge(0), 0.0)];
    for (i, &d) in densities.iter().enumerate() {
        points.push((edge(i), d));
        points.push((edge(i + 1), d));
    }
    points.push((edge(densities.len()), 0.0));
    points
}

/// Where a chart's legend goes (chosen so that it does not hide the lines). If the legend box
/// would cover a line or point in the corner asked for, the first corner where it covers none
/// is used instead (the other one on the same side first); if every corner would, the vertical
/// axis is extended on the side asked for, as [`Chart::with_legend_room`] does (over a
/// [`Chart::heatmap`], whose axes are fixed, the legend goes where it covers the least).
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
    /// The corners to try, the one asked for first, then the other on the same side (top or
    /// bottom, where [`Chart::with_legend_room`] makes space), then the rest.
    fn candidates(self) -> [Legend; 4] {
        use Legend::*;
        match self {
            UpperRight | Hidden => [UpperRight, UpperLeft, LowerRight, LowerLeft],
            UpperLeft => [UpperLeft, UpperRight, LowerLeft, LowerRight],
            LowerRight => [LowerRight, LowerLeft, UpperRight, UpperLeft],
            LowerLeft => [LowerLeft, LowerRight, UpperLeft, UpperRight],
        }
    }

    fn is_lower(self) -> bool {
        matches!(self, Legend::LowerLeft | Legend::LowerRight)
    }

    fn is_left(self) -> bool {
        matches!(self, Legend::UpperLeft | Legend::LowerLeft)
    }
}

/// A panel background of cells coloured by class, such as a classifier's decision regions.
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    /// The horizontal extent of the grid (left edge of the first column, right edge of the last).
    pub x_range: (f64, f64),
    /// The vertical extent of the grid (bottom edge of the first row, top edge of the last).
    pub y_range: (f64, f64),
    /// Class indices (into the palette), row by row from the bottom, each row from the left:
    /// `cells[i][j]` is the cell in row `i` (y increasing) and column `j` (x increasing).
    pub cells: Vec<Vec<usize>>,
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
    /// A logarithmic horizontal axis, for values that span decades (learning rates, penalties).
    pub log_x: bool,
    /// A background of cells coloured by class, under everything else.
    pub heatmap: Option<Heatmap>,
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
            log_x: false,
            heatmap: None,
        }
    }

    /// The same chart with a logarithmic vertical axis.
    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }

    /// The same chart with a logarithmic horizontal axis (points with x <= 0 are skipped).
    pub fn log_x(mut self) -> Self {
        self.log_x = true;
        self
    }

    /// The same chart over a background of `cells` coloured by class, each a light tint of
    /// its class' palette colour, spanning `x_range` by `y_range` (see [`Heatmap::cells`] for
    /// their order). Add the points on top with [`Series::scatter`], in the same colours.
    pub fn heatmap(
        mut self,
        x_range: (f64, f64),
        y_range: (f64, f64),
        cells: Vec<Vec<usize>>,
    ) -> Self {
        self.heatmap = Some(Heatmap {
            x_range,
            y_range,
            cells,
        });
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

    fn drawable_point(&self, (x, y): (f64, f64)) -> bool {
        x.is_finite() && y.is_finite() && (!self.log_x || x > 0.0) && (!self.log_y || y > 0.0)
    }

    /// The points that can be drawn: finite, and positive on a log axis.
    fn drawable(&self, series: &Series) -> Vec<(f64, f64)> {
        series
            .points
            .iter()
            .copied()
            .filter(|&p| self.drawable_point(p))
            .collect()
    }

    /// The drawable `(x, low, high)` triples of a band, `low` as `None` when it is below a log
    /// axis (drawn at the axis' bottom).
    fn drawable_band(&self, band: &[(f64, f64, f64)]) -> Vec<(f64, Option<f64>, f64)> {
        band.iter()
            .filter(|&&(x, low, high)| low.is_finite() && self.drawable_point((x, high)))
            .map(|&(x, low, high)| {
                let low = if self.log_y && low <= 0.0 {
                    None
                } else {
                    Some(low.min(high))
                };
                (x, low, high)
            })
            .collect()
    }

    /// The points that decide the axes' ranges.
    fn extent(&self) -> Vec<(f64, f64)> {
        let mut points = Vec::new();
        for series in &self.series {
            match &series.kind {
                SeriesKind::Band(band) => {
                    for (x, low, high) in self.drawable_band(band) {
                        points.push((x, high));
                        if let Some(low) = low {
                            points.push((x, low));
                        }
                    }
                }
                _ => points.extend(self.drawable(series)),
            }
        }
        points
    }

    /// The axes' ranges: all drawable points (and the heatmap), padded so that no line sits on
    /// the frame. With `room`, a corner and a fraction, the vertical axis is extended on that
    /// corner's side (top or bottom) so that the data stays out of that fraction of the plot's
    /// height, for the legend (see [`Chart::legend_room`]).
    fn ranges(&self, room: Option<(Legend, f64)>) -> (Range<f64>, Range<f64>) {
        let points = self.extent();
        let heatmap = self.heatmap.as_ref();
        let default_x = if self.log_x { (1.0, 10.0) } else { (0.0, 1.0) };
        let (mut x_min, mut x_max) = min_max(points.iter().map(|p| p.0)).unwrap_or(default_x);
        let (mut y_min, mut y_max) = min_max(points.iter().map(|p| p.1)).unwrap_or((0.1, 1.0));
        if let Some(h) = heatmap {
            if points.is_empty() {
                (x_min, x_max, y_min, y_max) = (h.x_range.0, h.x_range.1, h.y_range.0, h.y_range.1);
            } else {
                (x_min, x_max) = (x_min.min(h.x_range.0), x_max.max(h.x_range.1));
                (y_min, y_max) = (y_min.min(h.y_range.0), y_max.max(h.y_range.1));
            }
        }

        // Horizontal: lines end at the frame (an epoch axis starts at 0), but markers would be
        // cut in half there, so charts with markers get a little room on each side.
        let marked = self.series.iter().any(|s| s.markers);
        let x_pad = if marked && heatmap.is_none() {
            0.04
        } else {
            0.0
        };
        let (x_lo, x_hi) = pad_axis(x_min, x_max, self.log_x, (x_pad, x_pad));

        let y_range = if heatmap.is_some() {
            pad_axis(y_min, y_max, self.log_y, (0.0, 0.0))
        } else {
            // A histogram's axis starts at zero, where its outline stands.
            let from_zero = !self.log_y
                && y_min >= 0.0
                && self.series.iter().any(|s| s.kind == SeriesKind::Histogram);
            let (mut below, mut above): (f64, f64) = (if from_zero { 0.0 } else { 0.05 }, 0.05);
            if let Some((corner, fraction)) = room {
                // The axis is then (1 + other side's padding + room) spans of the data; the
                // legend needs `room / that >= f`, so `room = f (1 + other) / (1 - f)`.
                let f = (fraction + 0.03).clamp(0.0, 0.6);
                if corner.is_lower() {
                    below = f * (1.0 + above) / (1.0 - f);
                } else {
                    above = f * (1.0 + below) / (1.0 - f);
                }
            }
            pad_axis(y_min, y_max, self.log_y, (below, above))
        };
        (x_lo..x_hi, y_range.0..y_range.1)
    }
}

/// `min..max` padded by fractions of its span (of its span in decades on a log axis), at least
/// a decade wide on a log axis and never empty.
fn pad_axis(min: f64, max: f64, log: bool, (below, above): (f64, f64)) -> (f64, f64) {
    if log {
        let (lo, hi) = (min.log10(), max.log10());
        // At least a decade shown in all, so that there are ticks to read.
        let span = (hi - lo).max(1.0);
        let centre = (lo + hi) / 2.0;
        let (lo, hi) = ((centre - span / 2.0).min(lo), (centre + span / 2.0).max(hi));
        let (lo, hi) = (lo - below * span, hi + above * span);
        (10f64.powf(lo), 10f64.powf(hi))
    } else {
        let (min, max, span) = if max > min {
            (min, max, max - min)
        } else if min == 0.0 {
            (-0.5, 0.5, 1.0)
        } else {
            // A flat line: a span of a tenth of its value each way.
            let d = min.abs() * 0.1;
            (min - d, max + d, 2.0 * d)
        };
        (min - below * span, max + above * span)
    }
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Writes `charts` into one SVG file: side by side when there are one or two, else as a grid of
/// two columns, row by row (a lone panel in the last row is centred).
pub fn write_svg(path: &Path, charts: &[Chart]) -> Result<()> {
    write_svg_grid(path, charts, charts.len().min(MAX_COLUMNS))
}

/// Writes `charts` into one SVG file as a grid, `columns` panels per row, row by row (a last row
/// with fewer panels is centred). The text is sized for at most two columns shown 800 pixels
/// wide.
pub fn write_svg_grid(path: &Path, charts: &[Chart], columns: usize) -> Result<()> {
    let svg = render_svg(charts, columns)?;
    std::fs::write(path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

/// The SVG document of `charts` in a grid of `columns` columns.
fn render_svg(charts: &[Chart], columns: usize) -> Result<String> {
    let columns = columns.clamp(1, charts.len().max(1));
    let rows = charts.len().div_ceil(columns).max(1);
    let logical = (PANEL_SIZE.0 * columns as u32, PANEL_SIZE.1 * rows as u32);
    let scaled = (logical.0 * SCALE, logical.1 * SCALE);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, scaled).into_drawing_area();
        root.fill(&WHITE)?;
        let (panel_w, panel_h) = (PANEL_SIZE.0 * SCALE, PANEL_SIZE.1 * SCALE);
        for (row, row_charts) in charts.chunks(columns).enumerate() {
            // One title height per row, so that the plots of a row line up.
            let titles: Vec<TextBlock> = row_charts.iter().map(|c| title_block(&c.title)).collect();
            let title_height = titles.iter().map(TextBlock::height).fold(0.0, f64::max);
            let indent = (columns - row_charts.len()) as u32 * panel_w / 2;
            for (column, (chart, title)) in row_charts.iter().zip(&titles).enumerate() {
                let origin = (indent + column as u32 * panel_w, row as u32 * panel_h);
                let panel = root.clone().shrink(origin, (panel_w, panel_h));
                draw_panel(&panel, chart, title, title_height)?;
            }
        }
        root.present()?;
    }
    set_logical_size(&svg, logical, scaled)
}

/// `svg` with its root element's `width` and `height` set to the logical size, its `viewBox`
/// left at the drawn (scaled) size.
fn set_logical_size(svg: &str, logical: (u32, u32), scaled: (u32, u32)) -> Result<String> {
    let drawn = format!(
        r#"<svg width="{}" height="{}" viewBox="0 0 {} {}""#,
        scaled.0, scaled.1, scaled.0, scaled.1
    );
    let shown = format!(
        r#"<svg width="{}" height="{}" viewBox="0 0 {} {}""#,
        logical.0, logical.1, scaled.0, scaled.1
    );
    match svg.strip_prefix(&drawn) {
        Some(rest) => Ok(format!("{shown}{rest}")),
        None => Err("plotters wrote an unexpected <svg> element".into()),
    }
}

/// `logical` pixels in drawn (scaled) pixels.
fn px(logical: f64) -> i32 {
    (logical * f64::from(SCALE)).round() as i32
}

/// [`px`], unsigned (for stroke widths and radii).
fn upx(logical: f64) -> u32 {
    px(logical).max(0) as u32
}

/// A sans-serif text style whose SVG `font-size` is `size` logical pixels times [`SCALE`].
fn font(size: f64) -> TextStyle<'static> {
    let target = size * f64::from(SCALE);
    // Plotters' SVG backend writes `font-size` as the style's size / 1.24 (its ratio of em to
    // pixel height), so the size given to it is multiplied back; nudged up by the last bits so
    // that the division does not land one rounding step below the size meant.
    let mut given = target * 1.24;
    while given / 1.24 < target {
        given = f64::from_bits(given.to_bits() + 1);
    }
    FontDesc::new(FontFamily::SansSerif, given, FontStyle::Normal).into()
}

/// The estimated width of `c`, in ems, from DejaVu Sans (wider than Arial or Helvetica, so text
/// sized with it fits in whichever sans-serif font the viewer picks).
fn glyph_em(c: char) -> f64 {
    match c {
        'i' | 'j' | 'l' | 'I' | 'J' | '|' | '!' | '\'' => 0.30,
        '.' | ',' | ':' | ';' | ' ' => 0.33,
        'f' | 't' | 'r' | '(' | ')' | '[' | ']' | '{' | '}' | '-' | '/' | '\\' => 0.41,
        'm' | 'w' | 'M' | 'W' | '%' => 0.98,
        '=' | '+' | '<' | '>' | '#' | '~' => 0.84,
        'A'..='Z' => 0.73,
        '0'..='9' => 0.64,
        _ => 0.63,
    }
}

/// The estimated width of `text` at `size` pixels.
fn text_width(text: &str, size: f64) -> f64 {
    text.chars().map(glyph_em).sum::<f64>() * size
}

/// `text` broken at spaces into lines at most `max_width` wide at `size` (a word longer than
/// that gets a line of its own); two lines are balanced ("binary cross-entropy" over "(log
/// scale)", not "binary cross-entropy (log" over "scale)").
fn wrap(text: &str, size: f64, max_width: f64) -> Vec<String> {
    let lines = wrap_greedy(text, size, max_width);
    if lines.len() != 2 {
        return lines;
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    (1..words.len())
        .map(|k| [words[..k].join(" "), words[k..].join(" ")])
        .filter(|pair| pair.iter().all(|l| text_width(l, size) <= max_width))
        .min_by(|a, b| {
            let widest =
                |pair: &[String; 2]| text_width(&pair[0], size).max(text_width(&pair[1], size));
            widest(a).total_cmp(&widest(b))
        })
        .map_or(lines, Vec::from)
}

/// `text` broken at spaces, each line as long as fits.
fn wrap_greedy(text: &str, size: f64, max_width: f64) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if text_width(&format!("{line} {word}"), size) <= max_width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

/// Lines of text at one size.
#[derive(Clone, Debug, PartialEq)]
struct TextBlock {
    size: f64,
    lines: Vec<String>,
}

impl TextBlock {
    /// `text` on one line at the largest size from `preferred` down to `min` (in half pixels)
    /// at which it fits in `max_width`; if it does not fit even at `min`, wrapped at `preferred`
    /// (at `min` if that makes more than `max_lines` lines).
    fn fit(text: &str, preferred: f64, min: f64, max_width: f64, max_lines: usize) -> Self {
        let mut size = preferred;
        while size > min && text_width(text, size) > max_width {
            size = (size - 0.5).max(min);
        }
        if text_width(text, size) <= max_width {
            return TextBlock {
                size,
                lines: vec![text.to_string()],
            };
        }
        let lines = wrap(text, preferred, max_width);
        if lines.len() <= max_lines {
            return TextBlock {
                size: preferred,
                lines,
            };
        }
        TextBlock {
            size: min,
            lines: wrap(text, min, max_width),
        }
    }

    fn height(&self) -> f64 {
        self.lines.len() as f64 * self.size * LINE_SPACING
    }
}

/// A panel's title, fitted to the panel's width.
fn title_block(title: &str) -> TextBlock {
    let width = f64::from(PANEL_SIZE.0) - 2.0 * MARGIN;
    TextBlock::fit(title, TITLE_PX, TITLE_MIN_PX, width, 2)
}

/// One axis: its range, whether it is logarithmic, and its ticks with their labels.
///
/// Plotters' own coordinates choose their ticks without knowing how wide the labels are, and
/// its log axis mixes label styles; this one gets its ticks from [`linear_ticks`] or
/// [`log_ticks`], chosen to fit the labels.
#[derive(Clone, Debug, PartialEq)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    ticks: Vec<f64>,
    labels: Vec<String>,
}

impl Axis {
    /// An axis over `range` with as many ticks (at most [`MAX_TICKS`]) as fit `length` logical
    /// pixels, horizontal (labels side by side) or vertical (labels one above the other).
    fn new(range: Range<f64>, log: bool, length: f64, horizontal: bool) -> Self {
        let mut axis = Axis {
            lo: range.start,
            hi: range.end,
            log,
            ticks: Vec::new(),
            labels: Vec::new(),
        };
        let fits =
            |ticks: &[f64], labels: &[String]| axis.labels_fit(ticks, labels, length, horizontal);
        let (ticks, labels) = if log {
            log_ticks(range.start, range.end, fits)
        } else {
            linear_ticks(range.start, range.end, fits)
        };
        axis.ticks = ticks;
        axis.labels = labels;
        axis
    }

    /// Where `v` is along the axis, from 0 (start) to 1 (end).
    fn fraction(&self, v: f64) -> f64 {
        let t = if self.log {
            (v.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        if t.is_nan() {
            0.0
        } else {
            t.clamp(-10.0, 10.0)
        }
    }

    /// Whether `labels` at `ticks` leave room between one another along `length` pixels.
    fn labels_fit(&self, ticks: &[f64], labels: &[String], length: f64, horizontal: bool) -> bool {
        let position = |t: f64| self.fraction(t) * length;
        ticks.windows(2).zip(labels.windows(2)).all(|(t, l)| {
            let room = position(t[1]) - position(t[0]);
            let needed = if horizontal {
                (text_width(&l[0], TICK_PX) + text_width(&l[1], TICK_PX)) / 2.0 + TICK_PX
            } else {
                TICK_PX * 1.8
            };
            room >= needed
        })
    }

    /// The widest tick label, in logical pixels.
    fn label_width(&self) -> f64 {
        self.labels
            .iter()
            .map(|l| text_width(l, TICK_PX))
            .fold(0.0, f64::max)
    }
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let length = f64::from(limit.1 - limit.0);
        limit.0 + (length * self.fraction(*value)).round() as i32
    }

    /// The ticks for the grid lines and labels; no light grid lines.
    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        match hint.weight() {
            KeyPointWeight::Bold => self.ticks.clone(),
            KeyPointWeight::Any => Vec::new(),
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for Axis {
    fn format_ext(&self, value: &f64) -> String {
        match self.ticks.iter().position(|t| t == value) {
            Some(i) => self.labels[i].clone(),
            None => format!("{value}"),
        }
    }
}

/// Ticks at the multiples of a 1, 2 or 5 times a power of ten within `lo..=hi`: the finest step
/// that gives at most [`MAX_TICKS`] ticks whose labels `fit`. Labels have as many decimals as
/// the step needs ("0.3", "0.4" for a step of 0.1; "0", "50" for a step of 50), all the same.
fn linear_ticks(
    lo: f64,
    hi: f64,
    fits: impl Fn(&[f64], &[String]) -> bool,
) -> (Vec<f64>, Vec<String>) {
    let span = hi - lo;
    if !span.is_finite() || span <= 0.0 {
        return (vec![lo], vec![format!("{lo}")]);
    }
    let mut best = None;
    let first_exponent = (span / MAX_TICKS as f64).log10().floor() as i32 - 1;
    'steps: for exponent in first_exponent..first_exponent + 4 {
        for mantissa in [1.0, 2.0, 5.0] {
            let step = mantissa * 10f64.powi(exponent);
            let first = (lo / step - 1e-9).ceil() as i64;
            let last = (hi / step + 1e-9).floor() as i64;
            if last - first + 1 > MAX_TICKS as i64 {
                continue;
            }
            let ticks: Vec<f64> = (first..=last).map(|k| k as f64 * step).collect();
            // Decimals for the step: 0.1 needs 1, 0.05 needs 2, 2 needs none (the tolerance
            // keeps log10(0.1) = -0.99999... from asking for 2).
            let decimals = (-step.log10() - 1e-9).ceil().max(0.0) as usize;
            let labels: Vec<String> = ticks
                .iter()
                .map(|t| {
                    format!(
                        "{:.decimals$}",
                        if t.abs() < step * 1e-6 { 0.0 } else { *t }
                    )
                })
                .collect();
            let fit = fits(&ticks, &labels);
            best = Some((ticks, labels));
            if fit {
                break 'steps;
            }
        }
    }
    best.unwrap_or_else(|| (vec![lo], vec![format!("{lo}")]))
}

/// Ticks of a log axis over `lo..=hi` (both positive) whose labels `fit`: every power of ten,
/// or every second, third... when they do not fit; 1, 2 and 5 times the powers of ten when the
/// axis spans too few decades to show three powers. One label style for the whole axis (see
/// [`log_labels`]).
fn log_ticks(
    lo: f64,
    hi: f64,
    fits: impl Fn(&[f64], &[String]) -> bool,
) -> (Vec<f64>, Vec<String>) {
    let first = (lo.log10() - 1e-9).ceil() as i32;
    let last = (hi.log10() + 1e-9).floor() as i32;
    let make = |marks: Vec<(u32, i32)>| {
        let ticks: Vec<f64> = marks
            .iter()
            .map(|&(m, e)| mantissa_exponent(m, e))
            .collect();
        (ticks, log_labels(&marks))
    };
    if last - first + 1 < 3 {
        let marks: Vec<(u32, i32)> = (first - 1..=last)
            .flat_map(|e| [1, 2, 5].map(|m| (m, e)))
            .filter(|&(m, e)| (lo..=hi).contains(&mantissa_exponent(m, e)))
            .collect();
        let (ticks, labels) = make(marks);
        if ticks.len() <= MAX_TICKS && fits(&ticks, &labels) {
            return (ticks, labels);
        }
    }
    let mut every = 1;
    loop {
        // Powers of ten at multiples of `every` (1e-9, 1e-6, 1e-3, 1 for every third).
        let marks: Vec<(u32, i32)> = (first..=last)
            .filter(|e| e.rem_euclid(every) == 0)
            .map(|e| (1, e))
            .collect();
        let (ticks, labels) = make(marks);
        if ticks.len() <= 1 || (ticks.len() <= MAX_TICKS && fits(&ticks, &labels)) {
            return (ticks, labels);
        }
        every += 1;
    }
}

/// `m` times ten to the `e`, as the nearest float (`1e-5` exactly as written).
fn mantissa_exponent(m: u32, e: i32) -> f64 {
    format!("{m}e{e}").parse().expect("a float literal")
}

/// Labels for log ticks given as (mantissa, exponent), in one style for the whole axis: plain
/// numbers ("0.01", "2", "5000") when every tick is within 0.001..10000, else powers of ten
/// ("1e-5", "2e-5", "1e0") for all, so that a panel does not mix "0.01" with "1e-5".
fn log_labels(marks: &[(u32, i32)]) -> Vec<String> {
    let plain = marks.iter().all(|&(m, e)| {
        let v = mantissa_exponent(m, e);
        (1e-3..1e4).contains(&v)
    });
    marks
        .iter()
        .map(|&(m, e)| {
            if !plain {
                format!("{m}e{e}")
            } else if e >= 0 {
                format!("{}", u64::from(m) * 10u64.pow(e as u32))
            } else {
                format!("{:.*}", (-e) as usize, mantissa_exponent(m, e))
            }
        })
        .collect()
}

/// What a legend entry shows next to its text.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Sample {
    /// A line, maybe dashed, maybe with a dot in its middle.
    Line {
        color: RGBColor,
        dashed: bool,
        marker: bool,
    },
    /// A dot (a marked point).
    Marker(RGBColor),
    /// A dot with a darker edge (scatter points).
    Scatter(RGBColor),
    /// A translucent filled square (a band).
    Square(RGBColor),
}

/// A legend entry: its sample and its (maybe wrapped) text.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    sample: Sample,
    lines: Vec<String>,
}

/// A laid-out legend: its entries at one text size, and the box's size in logical pixels.
#[derive(Clone, Debug, PartialEq)]
struct LegendBox {
    size: f64,
    entries: Vec<Entry>,
    width: f64,
    height: f64,
}

impl LegendBox {
    /// The legend of `chart`'s labelled series, its text at most `max_text` pixels wide:
    /// [`LEGEND_PX`], shrunk (not below [`MIN_TEXT_PX`]) and then wrapped if a label is wider.
    /// `None` when the legend is hidden or no series has a label.
    fn new(chart: &Chart, max_text: f64) -> Option<Self> {
        if chart.legend == Legend::Hidden {
            return None;
        }
        let labelled: Vec<&Series> = chart
            .series
            .iter()
            .filter(|s| !s.label.is_empty())
            .collect();
        if labelled.is_empty() {
            return None;
        }
        let widest = labelled
            .iter()
            .map(|s| text_width(&s.label, LEGEND_PX))
            .fold(0.0, f64::max);
        let size = if widest <= max_text {
            LEGEND_PX
        } else {
            (LEGEND_PX * max_text / widest).max(MIN_TEXT_PX)
        };
        let size = (size * 2.0).floor() / 2.0;
        let entries: Vec<Entry> = labelled
            .iter()
            .map(|s| Entry {
                sample: sample(s),
                lines: if text_width(&s.label, size) <= max_text {
                    vec![s.label.clone()]
                } else {
                    wrap(&s.label, size, max_text)
                },
            })
            .collect();
        let text = entries
            .iter()
            .flat_map(|e| &e.lines)
            .map(|l| text_width(l, size))
            .fold(0.0, f64::max);
        let lines = entries.iter().map(|e| e.lines.len()).sum::<usize>();
        Some(LegendBox {
            size,
            width: 2.0 * LEGEND_PAD + LEGEND_SAMPLE + LEGEND_GAP + text,
            height: 2.0 * LEGEND_PAD + lines as f64 * size * LINE_SPACING,
            entries,
        })
    }
}

/// The legend sample of `series`.
fn sample(series: &Series) -> Sample {
    let color = PALETTE[series.color % PALETTE.len()];
    match series.kind {
        SeriesKind::Band(_) => Sample::Square(color),
        SeriesKind::Scatter => Sample::Scatter(color),
        SeriesKind::Line | SeriesKind::Histogram if series.line => Sample::Line {
            color,
            dashed: series.dashed,
            marker: series.markers,
        },
        _ => Sample::Marker(color),
    }
}

/// The places (as fractions of the plot's width and height, y up) that `chart`'s marks cover:
/// points along every line and across every band, every marker.
fn ink(chart: &Chart, x: &Axis, y: &Axis) -> Vec<(f64, f64)> {
    let at = |(px, py): (f64, f64)| (x.fraction(px), y.fraction(py));
    let mut ink = Vec::new();
    for series in &chart.series {
        match &series.kind {
            SeriesKind::Band(band) => {
                // Nine lines from the lower curve to the upper one stand for the fill.
                let band = chart.drawable_band(band);
                for i in 0..=8 {
                    let line: Vec<(f64, f64)> = band
                        .iter()
                        .map(|&(bx, low, high)| {
                            let low = low.unwrap_or(y.lo);
                            at((bx, low + (high - low) * f64::from(i) / 8.0))
                        })
                        .collect();
                    along(&mut ink, &line);
                }
            }
            _ => {
                let points: Vec<(f64, f64)> = chart.drawable(series).into_iter().map(at).collect();
                if series.line {
                    along(&mut ink, &points);
                } else {
                    ink.extend(points);
                }
            }
        }
    }
    ink
}

/// Points every half percent along the polyline `points` (plot fractions), and its corners.
fn along(ink: &mut Vec<(f64, f64)>, points: &[(f64, f64)]) {
    for pair in points.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let steps = (((b.0 - a.0).abs() + (b.1 - a.1).abs()) / 0.005)
            .ceil()
            .clamp(1.0, 1e4);
        for i in 0..steps as usize {
            let t = i as f64 / steps;
            ink.push((a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1)));
        }
    }
    ink.extend(points.iter().copied());
}

/// The corner for `legend` on a plot of `plot` logical pixels, and how many `ink` points its box
/// covers there: the one asked for unless its box covers some of the `ink`, then the first that
/// covers none, or else the least (see [`Legend`]).
fn legend_corner(
    asked: Legend,
    legend: &LegendBox,
    plot: (f64, f64),
    ink: &[(f64, f64)],
) -> (Legend, usize) {
    // The box with a marker's radius around it, as fractions of the plot.
    let w = (legend.width + LEGEND_INSET + MARKER_RADIUS) / plot.0;
    let h = (legend.height + LEGEND_INSET + MARKER_RADIUS) / plot.1;
    // How many of the ink points the box covers in `corner`.
    let covered = |corner: Legend| {
        let xs = if corner.is_left() {
            0.0..=w
        } else {
            1.0 - w..=1.0
        };
        let ys = if corner.is_lower() {
            0.0..=h
        } else {
            1.0 - h..=1.0
        };
        ink.iter()
            .filter(|(x, y)| xs.contains(x) && ys.contains(y))
            .count()
    };
    // The first of the least covered (`min_by_key` keeps the first of equals).
    asked
        .candidates()
        .into_iter()
        .map(|c| (c, covered(c)))
        .min_by_key(|&(_, n)| n)
        .expect("four corners")
}

/// Draws one chart in `area`, its title (already fitted) in a band `title_height` high.
fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    chart: &Chart,
    title: &TextBlock,
    title_height: f64,
) -> Result<()> {
    let (panel_w, panel_h) = (f64::from(PANEL_SIZE.0), f64::from(PANEL_SIZE.1));

    // Vertical layout: title, plot, tick labels, axis description.
    let x_desc = TextBlock::fit(
        &chart.x_label,
        DESC_PX,
        MIN_TEXT_PX,
        panel_w - 2.0 * MARGIN,
        1,
    );
    let x_area = 2.0 * TICK_LEN + TICK_PX * LINE_SPACING + DESC_GAP + x_desc.height();
    let top = MARGIN + title_height + TITLE_GAP;
    let plot_h = panel_h - top - x_area - MARGIN / 2.0;
    let y_desc = TextBlock::fit(&chart.y_label, DESC_PX, MIN_TEXT_PX, plot_h, 2);

    // The legend's size decides how much room it needs (from an estimate of the plot's width,
    // which depends on the tick labels, which depend on the ranges the legend room changes).
    let plot_w_estimate = panel_w - 2.0 * MARGIN - y_desc.height() - 80.0;
    let legend = LegendBox::new(
        chart,
        plot_w_estimate * 0.9 - 2.0 * LEGEND_PAD - LEGEND_SAMPLE - LEGEND_GAP,
    );
    let room = legend
        .as_ref()
        .map(|l| (chart.legend, (l.height + LEGEND_INSET) / plot_h));

    // Horizontal layout: axis description, tick labels, plot, room for the last x label.
    let layout = |room: Option<(Legend, f64)>| {
        let (x_range, y_range) = chart.ranges(room);
        let y = Axis::new(y_range, chart.log_y, plot_h, false);
        let y_area = y_desc.height() + DESC_GAP + y.label_width() + 2.0 * TICK_LEN;
        let plot_w = panel_w - MARGIN - y_area - MIN_MARGIN_RIGHT;
        let x = Axis::new(x_range, chart.log_x, plot_w, true);
        let last_label = match (x.ticks.last(), x.labels.last()) {
            (Some(&t), Some(l)) => text_width(l, TICK_PX) / 2.0 - (1.0 - x.fraction(t)) * plot_w,
            _ => 0.0,
        };
        let margin_right = MIN_MARGIN_RIGHT.max(last_label + 4.0);
        let plot_w = panel_w - MARGIN - y_area - margin_right;
        (x, y, y_area, margin_right, plot_w)
    };
    let mut axes = layout(room.filter(|_| chart.legend_room));
    let mut corner = None;
    if let Some(legend) = &legend {
        let place = |(x, y, _, _, plot_w): &(Axis, Axis, f64, f64, f64)| {
            legend_corner(chart.legend, legend, (*plot_w, plot_h), &ink(chart, x, y))
        };
        let (mut best, covered) = place(&axes);
        // Every corner covers some of the lines: make room on the side asked for instead, as
        // `with_legend_room` does (a heatmap's axes are its own, so it keeps the least covered).
        if covered > 0 && !chart.legend_room && chart.heatmap.is_none() {
            axes = layout(room);
            best = place(&axes).0;
        }
        corner = Some(best);
    }
    let (x_axis, y_axis, y_area, margin_right, _) = axes;

    // The title, centred over the plot's band of the panel.
    let title_style = font(title.size).pos(Pos::new(HPos::Center, VPos::Top));
    let title_top = MARGIN + (title_height - title.height()) / 2.0;
    for (i, line) in title.lines.iter().enumerate() {
        let y = title_top + i as f64 * title.size * LINE_SPACING;
        area.draw_text(line, &title_style, (px(panel_w / 2.0), px(y)))?;
    }

    let mut context = ChartBuilder::on(area)
        .margin_top(px(top))
        .margin_left(px(MARGIN))
        .margin_right(px(margin_right))
        .margin_bottom(px(MARGIN / 2.0))
        .x_label_area_size(px(x_area))
        .y_label_area_size(px(y_area))
        .build_cartesian_2d(x_axis.clone(), y_axis.clone())
        .map_err(|e| e.to_string())?;

    if let Some(heatmap) = &chart.heatmap {
        draw_heatmap(&context, heatmap)?;
    }

    context
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(BLACK.mix(0.15).stroke_width(upx(1.0)))
        .axis_style(BLACK.stroke_width(upx(1.0)))
        .set_all_tick_mark_size(px(TICK_LEN))
        .label_style(font(TICK_PX))
        .draw()
        .map_err(|e| e.to_string())?;

    // Axis descriptions, drawn here rather than by plotters so that a long one can wrap.
    let (plot_x, plot_y) = context.plotting_area().get_pixel_range();
    let base = area.get_base_pixel();
    let plot_mid_x = (plot_x.start + plot_x.end) / 2 - base.0;
    let plot_mid_y = (plot_y.start + plot_y.end) / 2 - base.1;
    let x_desc_top = plot_y.end - base.1 + px(2.0 * TICK_LEN + TICK_PX * LINE_SPACING + DESC_GAP);
    let x_style = font(x_desc.size).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, line) in x_desc.lines.iter().enumerate() {
        let y = x_desc_top + px(i as f64 * x_desc.size * LINE_SPACING);
        area.draw_text(line, &x_style, (plot_mid_x, y))?;
    }
    let y_style = font(y_desc.size)
        .transform(FontTransform::Rotate270)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (i, line) in y_desc.lines.iter().enumerate() {
        let x = px(MARGIN + i as f64 * y_desc.size * LINE_SPACING);
        area.draw_text(line, &y_style, (x, plot_mid_y))?;
    }

    // Bands first, under the lines they go with.
    for series in &chart.series {
        if let SeriesKind::Band(band) = &series.kind {
            draw_band(&mut context, chart, series, band, &y_axis)?;
        }
    }
    for series in &chart.series {
        if !matches!(series.kind, SeriesKind::Band(_)) {
            draw_series(&mut context, chart, series)?;
        }
    }

    if let (Some(legend), Some(corner)) = (&legend, corner) {
        draw_legend(&context, legend, corner)?;
    }
    Ok(())
}

type Context<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Axis, Axis>>;

/// The heatmap's cells, each a rectangle in a light tint of its class' colour. They are drawn
/// in pixels, each a logical pixel wider (to the right) and taller (upwards) than its place, so
/// that antialiasing leaves no hairline seams between neighbours: rows are drawn from the
/// bottom and columns from the left, so a cell's overlap lies under the next ones.
fn draw_heatmap(context: &Context<'_, '_>, heatmap: &Heatmap) -> Result<()> {
    let plot = context.plotting_area().strip_coord_spec();
    let base = plot.get_base_pixel();
    let rows = heatmap.cells.len();
    let width = plot.dim_in_pixel().0 as i32;
    let overlap = px(1.0);
    let (x0, x1) = heatmap.x_range;
    let (y0, y1) = heatmap.y_range;
    for (i, row) in heatmap.cells.iter().enumerate() {
        let columns = row.len();
        for (j, &class) in row.iter().enumerate() {
            let left = x0 + (x1 - x0) * j as f64 / columns as f64;
            let right = x0 + (x1 - x0) * (j + 1) as f64 / columns as f64;
            let bottom = y0 + (y1 - y0) * i as f64 / rows as f64;
            let top = y0 + (y1 - y0) * (i + 1) as f64 / rows as f64;
            let (l, t) = context.backend_coord(&(left, top));
            let (r, b) = context.backend_coord(&(right, bottom));
            // Over the next cells' edges (which are drawn later, on top), not past the plot.
            let corners = [
                (l - base.0, (t - base.1 - overlap).max(0)),
                ((r - base.0 + overlap).min(width), b - base.1),
            ];
            plot.draw(&Rectangle::new(corners, tint(class).filled()))?;
        }
    }
    Ok(())
}

/// The light tint of palette colour `class` for heatmap cells (opaque, so cells do not darken
/// where they overlap).
fn tint(class: usize) -> RGBColor {
    let RGBColor(r, g, b) = PALETTE[class % PALETTE.len()];
    let mix = |c: u8| (255.0 - (255.0 - f64::from(c)) * HEATMAP_TINT).round() as u8;
    RGBColor(mix(r), mix(g), mix(b))
}

/// `color` darkened, for the edge of scatter points.
fn darker(color: RGBColor) -> RGBColor {
    let RGBColor(r, g, b) = color;
    let dim = |c: u8| (f64::from(c) * 0.55).round() as u8;
    RGBColor(dim(r), dim(g), dim(b))
}

/// A band as translucent polygons, one per run of drawable triples.
fn draw_band(
    context: &mut Context<'_, '_>,
    chart: &Chart,
    series: &Series,
    band: &[(f64, f64, f64)],
    y_axis: &Axis,
) -> Result<()> {
    let color = PALETTE[series.color % PALETTE.len()];
    let triples = chart.drawable_band(band);
    if triples.len() < 2 {
        return Ok(());
    }
    // The upper curve left to right, then the lower one back.
    let mut outline: Vec<(f64, f64)> = triples.iter().map(|&(x, _, high)| (x, high)).collect();
    outline.extend(
        triples
            .iter()
            .rev()
            .map(|&(x, low, _)| (x, low.unwrap_or(y_axis.lo))),
    );
    context
        .draw_series(std::iter::once(Polygon::new(
            outline,
            color.mix(BAND_OPACITY).filled(),
        )))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// A line, histogram, marked points or scatter points.
fn draw_series(context: &mut Context<'_, '_>, chart: &Chart, series: &Series) -> Result<()> {
    let color = PALETTE[series.color % PALETTE.len()];
    let style = color.stroke_width(upx(LINE_WIDTH));
    let points = chart.drawable(series);
    if series.line && points.len() > 1 {
        if series.dashed {
            let series = DashedLineSeries::new(points.clone(), px(DASH.0), px(DASH.1), style);
            context.draw_series(series).map_err(|e| e.to_string())?;
        } else {
            context
                .draw_series(LineSeries::new(points.clone(), style))
                .map_err(|e| e.to_string())?;
        }
    }
    if series.kind == SeriesKind::Scatter {
        let edge = darker(color).stroke_width(upx(1.0));
        context
            .draw_series(points.iter().flat_map(|&p| {
                [
                    Circle::new(p, upx(SCATTER_RADIUS), color.filled()),
                    Circle::new(p, upx(SCATTER_RADIUS), edge),
                ]
            }))
            .map_err(|e| e.to_string())?;
    } else if series.markers {
        context
            .draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, upx(MARKER_RADIUS), color.filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The legend box in `corner` of the plot: a translucent white box, each entry's sample and text.
fn draw_legend(context: &Context<'_, '_>, legend: &LegendBox, corner: Legend) -> Result<()> {
    let plot = context.plotting_area().strip_coord_spec();
    let (w, h) = plot.dim_in_pixel();
    let (bw, bh) = (px(legend.width), px(legend.height));
    let left = if corner.is_left() {
        px(LEGEND_INSET)
    } else {
        w as i32 - px(LEGEND_INSET) - bw
    };
    let top = if corner.is_lower() {
        h as i32 - px(LEGEND_INSET) - bh
    } else {
        px(LEGEND_INSET)
    };
    let corners = [(left, top), (left + bw, top + bh)];
    plot.draw(&Rectangle::new(corners, WHITE.mix(0.85).filled()))?;
    plot.draw(&Rectangle::new(
        corners,
        BLACK.mix(0.4).stroke_width(upx(1.0)),
    ))?;

    let line_height = legend.size * LINE_SPACING;
    let text_style = font(legend.size).pos(Pos::new(HPos::Left, VPos::Center));
    let sample_left = left + px(LEGEND_PAD);
    let text_left = sample_left + px(LEGEND_SAMPLE + LEGEND_GAP);
    let mut y = f64::from(top) + f64::from(px(LEGEND_PAD));
    for entry in &legend.entries {
        let first_middle = (y + f64::from(px(line_height / 2.0))).round() as i32;
        for line in &entry.lines {
            let middle = (y + f64::from(px(line_height / 2.0))).round() as i32;
            plot.draw_text(line, &text_style, (text_left, middle))?;
            y += f64::from(px(line_height));
        }
        draw_sample(&plot, entry.sample, sample_left, first_middle)?;
    }
    Ok(())
}

/// A legend sample, its left end at `x`, centred on `y` (drawn pixels, plot-relative).
fn draw_sample(
    plot: &DrawingArea<SVGBackend<'_>, Shift>,
    sample: Sample,
    x: i32,
    y: i32,
) -> Result<()> {
    let (length, middle) = (px(LEGEND_SAMPLE), x + px(LEGEND_SAMPLE / 2.0));
    match sample {
        Sample::Line {
            color,
            dashed,
            marker,
        } => {
            let style = color.stroke_width(upx(LINE_WIDTH));
            if dashed {
                // Two dashes with the line's gap between them, centred.
                let dash = (length - px(DASH.1)) / 2;
                plot.draw(&PathElement::new(vec![(x, y), (x + dash, y)], style))?;
                plot.draw(&PathElement::new(
                    vec![(x + length - dash, y), (x + length, y)],
                    style,
                ))?;
            } else {
                plot.draw(&PathElement::new(vec![(x, y), (x + length, y)], style))?;
            }
            if marker {
                plot.draw(&Circle::new(
                    (middle, y),
                    upx(MARKER_RADIUS),
                    color.filled(),
                ))?;
            }
        }
        Sample::Marker(color) => {
            plot.draw(&Circle::new(
                (middle, y),
                upx(MARKER_RADIUS),
                color.filled(),
            ))?;
        }
        Sample::Scatter(color) => {
            plot.draw(&Circle::new(
                (middle, y),
                upx(SCATTER_RADIUS),
                color.filled(),
            ))?;
            let edge = darker(color).stroke_width(upx(1.0));
            plot.draw(&Circle::new((middle, y), upx(SCATTER_RADIUS), edge))?;
        }
        Sample::Square(color) => {
            let half = px(LEGEND_PX * 0.45);
            let corners = [(middle - half, y - half), (middle + half, y + half)];
            plot.draw(&Rectangle::new(corners, color.mix(BAND_OPACITY).filled()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values of attribute `name` in `svg`, in order.
    fn attributes<'a>(svg: &'a str, name: &str) -> Vec<&'a str> {
        let key = format!(" {name}=\"");
        svg.match_indices(&key)
            .map(|(i, _)| {
                let rest = &svg[i + key.len()..];
                &rest[..rest.find('"').expect("closing quote")]
            })
            .collect()
    }

    fn line_chart(title: &str) -> Chart {
        Chart::new(title, "epoch", "loss")
            .with(Series::new("train", vec![(0.0, 3.0), (5.0, 1.0), (10.0, 0.5)], 0).dashed())
            .with(Series::new(
                "test",
                vec![(0.0, 3.1), (5.0, 1.4), (10.0, 1.2)],
                1,
            ))
    }

    /// A file in the temporary directory, unique to this process and test.
    fn temp_svg(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("plot-test-{}-{name}.svg", std::process::id()))
    }

    #[test]
    fn the_root_element_has_the_logical_size_and_a_scaled_view_box() {
        let svg = render_svg(&[line_chart("one")], 1).unwrap();
        let root = &svg[..svg.find('>').unwrap()];
        assert_eq!(
            root,
            format!(
                r#"<svg width="560" height="400" viewBox="0 0 {} {}" xmlns="{}""#,
                560 * SCALE,
                400 * SCALE,
                "http://www.w3.org/2000/svg"
            )
        );
        assert_eq!(svg.matches("<svg").count(), 1);
    }

    #[test]
    fn write_svg_puts_two_charts_in_a_row_and_three_or_four_in_two_columns() {
        for (count, size) in [
            (1, (560, 400)),
            (2, (1120, 400)),
            (3, (1120, 800)),
            (4, (1120, 800)),
            (5, (1120, 1200)),
        ] {
            let charts: Vec<Chart> = (0..count)
                .map(|i| line_chart(&format!("chart {i}")))
                .collect();
            let path = temp_svg(&format!("grid{count}"));
            write_svg(&path, &charts).unwrap();
            let svg = std::fs::read_to_string(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            assert!(
                svg.starts_with(&format!(r#"<svg width="{}" height="{}" "#, size.0, size.1)),
                "{count} charts: {}",
                &svg[..80]
            );
            assert_eq!(svg.matches("chart ").count(), count, "every title drawn");
        }
    }

    #[test]
    fn a_lone_panel_in_the_last_row_is_centred() {
        let charts: Vec<Chart> = (0..3).map(|i| line_chart(&format!("chart {i}"))).collect();
        let svg = render_svg(&charts, 2).unwrap();
        let title_x = |title: &str| -> i64 {
            let at = svg.find(&format!(">\n{title}\n")).unwrap();
            let tag = &svg[svg[..at].rfind("<text").unwrap()..at];
            attributes(tag, "x")[0].parse().unwrap()
        };
        let panel = i64::from(PANEL_SIZE.0 * SCALE);
        assert_eq!(title_x("chart 0"), panel / 2);
        assert_eq!(title_x("chart 1"), panel + panel / 2);
        assert_eq!(title_x("chart 2"), panel);
    }

    #[test]
    fn every_text_is_at_least_the_minimum_size_even_when_shrunk_to_fit() {
        let long = "a very long label that does not fit in the legend of a panel at its usual size";
        let chart = Chart::new(
            "A title far too long to fit on one line of a panel at its usual size, so wrapped",
            "an axis description long enough to be shrunk a little to fit it",
            "a vertical axis description long enough to need two lines",
        )
        .log_y()
        .with(Series::new(long, vec![(0.0, 1e-9), (1.0, 1.0)], 0))
        .with(Series::new("short", vec![(0.0, 1e-3), (1.0, 1e-2)], 1));
        let svg = render_svg(&[chart.clone(), chart], 2).unwrap();
        let sizes: Vec<f64> = attributes(&svg, "font-size")
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert!(sizes.len() > 20, "{sizes:?}");
        let scale = f64::from(SCALE);
        for &size in &sizes {
            assert!(
                size >= MIN_TEXT_PX * scale,
                "font-size {size} below {}",
                MIN_TEXT_PX * scale
            );
        }
        // The tick labels at their own size, the title no smaller than its minimum.
        assert!(sizes.iter().any(|&s| (s - TICK_PX * scale).abs() < 1e-6));
        assert!(sizes.iter().any(|&s| s >= TITLE_MIN_PX * scale));
    }

    #[test]
    fn long_text_is_shrunk_then_wrapped_into_balanced_lines() {
        let text = "binary cross-entropy (log scale)";
        assert_eq!(
            wrap(text, 17.0, 283.0),
            ["binary cross-entropy", "(log scale)"]
        );
        let fitted = TextBlock::fit(text, DESC_PX, MIN_TEXT_PX, 283.0, 2);
        assert_eq!(fitted.size, DESC_PX);
        assert_eq!(fitted.lines.len(), 2);
        // Shrunk a little when that is enough to fit one line.
        let width = text_width(text, 19.0);
        let fitted = TextBlock::fit(text, DESC_PX, MIN_TEXT_PX, width, 2);
        assert_eq!((fitted.size, fitted.lines.len()), (19.0, 1));
        assert_eq!(
            wrap("a b c d e f", 18.0, text_width("a b c", 18.0)).len(),
            2
        );
        assert_eq!(wrap("one two three", 18.0, 1.0), ["one", "two", "three"]);
    }

    #[test]
    fn font_gives_the_exact_svg_size() {
        for size in [MIN_TEXT_PX, TICK_PX, 17.5, DESC_PX, TITLE_PX] {
            let svg_size = font(size).font.get_size() / 1.24;
            assert!(svg_size >= size * f64::from(SCALE), "{size}: {svg_size}");
            assert!(svg_size - size * f64::from(SCALE) < 1e-9);
        }
    }

    #[test]
    fn a_band_is_a_translucent_polygon_and_has_a_square_in_the_legend() {
        let band = vec![(0.0, 1.0, 2.0), (1.0, 1.5, 3.0), (2.0, 0.5, 1.0)];
        let chart = Chart::new("band", "x", "y")
            .with(Series::band("range over seeds", band, 2))
            .with(Series::new(
                "median",
                vec![(0.0, 1.5), (1.0, 2.0), (2.0, 0.8)],
                2,
            ));
        let svg = render_svg(&[chart], 1).unwrap();
        let polygons: Vec<&str> = svg.lines().filter(|l| l.starts_with("<polygon")).collect();
        assert_eq!(polygons.len(), 1, "{svg}");
        assert!(polygons[0].contains(r#"opacity="0.2""#));
        assert!(polygons[0].contains(r##"fill="#009E73""##));
        // Six corners: three along the top, three back along the bottom.
        assert_eq!(
            attributes(polygons[0], "points")[0]
                .split_whitespace()
                .count(),
            6
        );
        // The legend's square: a filled rectangle of the same colour and opacity.
        assert!(svg.lines().any(|l| l.starts_with("<rect")
            && l.contains(r#"opacity="0.2""#)
            && l.contains(r##"fill="#009E73""##)));
    }

    #[test]
    fn a_band_on_a_log_axis_skips_non_positive_highs_and_draws_low_ones_at_the_bottom() {
        let band = vec![
            (0.0, -1.0, 2.0),
            (1.0, 0.5, 3.0),
            (2.0, 0.5, 0.0),
            (3.0, 0.0, 1.0),
        ];
        let chart = Chart::new("band", "x", "y")
            .log_y()
            .with(Series::band("b", band.clone(), 0));
        assert_eq!(
            chart.drawable_band(&band),
            vec![(0.0, None, 2.0), (1.0, Some(0.5), 3.0), (3.0, None, 1.0)]
        );
        let (_, y) = chart.ranges(None);
        assert!(y.start > 0.0 && y.start < 0.5 && y.end > 3.0, "{y:?}");
        let svg = render_svg(&[chart], 1).unwrap();
        let polygon = svg.lines().find(|l| l.starts_with("<polygon")).unwrap();
        let points = attributes(polygon, "points")[0];
        assert_eq!(points.split_whitespace().count(), 6);
        assert!(!points.contains('-'), "all inside the panel: {points}");
    }

    #[test]
    fn log_x_maps_decades_to_equal_lengths_and_skips_non_positive_x() {
        let axis = Axis::new(1e-6..1.0, true, 400.0, true);
        assert!((axis.fraction(1e-3) - 0.5).abs() < 1e-12);
        assert!((axis.fraction(1e-5) - 1.0 / 6.0).abs() < 1e-12);
        assert_eq!(axis.map(&1e-3, (100, 500)), 300);
        assert_eq!(axis.map(&1.0, (100, 500)), 500);
        assert!(
            axis.labels.iter().all(|l| l.starts_with("1e")),
            "{:?}",
            axis.labels
        );

        let chart = Chart::new("sweep", "learning rate", "loss")
            .log_x()
            .with(Series::new(
                "loss",
                vec![(0.0, 5.0), (1e-6, 1.0), (1e-3, 0.5), (1.0, 2.0)],
                0,
            ));
        assert_eq!(chart.drawable(&chart.series[0]).len(), 3);
        let (x, _) = chart.ranges(None);
        assert_eq!(x, 1e-6..1.0);
        // With markers the axis gets room on both sides, the same in decades.
        let marked = chart.clone().with(Series::point("min", (1e-3, 0.5), 1));
        let (x, _) = marked.ranges(None);
        assert!(x.start < 1e-6 && x.end > 1.0);
        assert!(
            ((x.start.log10() + 6.0) + (x.end.log10() - 0.0)).abs() < 1e-9,
            "{x:?}"
        );
    }

    #[test]
    fn linear_tick_labels_have_the_decimals_the_step_needs() {
        let labels = |lo: f64, hi: f64| Axis::new(lo..hi, false, 440.0, true).labels;
        assert_eq!(
            labels(0.27, 0.93),
            ["0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]
        );
        assert_eq!(labels(0.0, 5.0), ["0", "1", "2", "3", "4", "5"]);
        assert_eq!(
            labels(0.0, 150.0),
            ["0", "20", "40", "60", "80", "100", "120", "140"]
        );
        assert_eq!(
            labels(-0.012, 0.031),
            ["-0.01", "0.00", "0.01", "0.02", "0.03"]
        );
        // On a narrow axis, fewer ticks, so that the labels do not run into each other.
        let narrow = Axis::new(0.0..1500.0, false, 150.0, true);
        assert!(narrow.labels.len() <= 4, "{:?}", narrow.labels);
        // Vertical axes leave a line and a bit between labels.
        let vertical = Axis::new(0.0..100.0, false, 100.0, false);
        assert!(vertical.labels.len() <= 3, "{:?}", vertical.labels);
    }

    #[test]
    fn log_tick_labels_use_one_style_per_axis() {
        let style = |lo: f64, hi: f64| Axis::new(lo..hi, true, 300.0, false).labels;
        // Within 0.001..1000: plain numbers.
        assert_eq!(style(0.005, 200.0), ["0.01", "0.1", "1", "10", "100"]);
        // Beyond it, powers of ten for every tick, even those that would be plain.
        for labels in [
            style(1e-9, 1.0),
            style(1e-5, 10.0),
            style(0.5, 2e4),
            style(1e-3, 1e27),
        ] {
            assert!(labels.len() >= 2, "{labels:?}");
            assert!(labels.iter().all(|l| l.contains('e')), "{labels:?}");
        }
        // Too few decades for three powers: 1, 2 and 5 times them.
        assert_eq!(style(0.15, 6.0), ["0.2", "0.5", "1", "2", "5"]);
        assert_eq!(
            log_labels(&[(1, -4), (5, -4), (1, -3)]),
            ["1e-4", "5e-4", "1e-3"]
        );
        assert_eq!(
            log_labels(&[(1, -3), (1, 0), (5, 3)]),
            ["0.001", "1", "5000"]
        );
        assert_eq!(log_labels(&[(1, 0), (1, 4)]), ["1e0", "1e4"]);
    }

    #[test]
    fn histogram_densities_integrate_to_one_over_the_range() {
        let values: Vec<f64> = (0..1000)
            .map(|i| (f64::from(i) * 0.618).fract() * 2.0 - 1.0)
            .collect();
        let densities = histogram_density(&values, 20, (-1.0, 1.0));
        assert_eq!(densities.len(), 20);
        let width = 2.0 / 20.0;
        let area: f64 = densities.iter().map(|d| d * width).sum();
        assert!((area - 1.0).abs() < 1e-12, "{area}");

        // The top edge counts in the last bin; values outside and NaN are not counted, the
        // area is then the fraction inside.
        let densities = histogram_density(&[0.0, 0.5, 1.0, 1.0, 2.0, f64::NAN], 2, (0.0, 1.0));
        assert_eq!(densities, [1.0 / (5.0 * 0.5), 3.0 / (5.0 * 0.5)]);
        assert!(histogram_density(&[1.0], 0, (0.0, 1.0)).is_empty());
        assert!(histogram_density(&[1.0], 3, (1.0, 1.0)).is_empty());

        let outline = histogram_outline(&[1.0, 3.0], (0.0, 1.0));
        assert_eq!(
            outline,
            [
                (0.0, 0.0),
                (0.0, 1.0),
                (0.5, 1.0),
                (0.5, 3.0),
                (1.0, 3.0),
                (1.0, 0.0)
            ]
        );
        let series = Series::histogram("layer 1", &[0.1, 0.2, 0.9], 2, (0.0, 1.0), 3);
        assert_eq!(series.kind, SeriesKind::Histogram);
        assert_eq!(series.points.len(), 6);
    }

    #[test]
    fn a_histogram_panel_starts_at_zero() {
        let chart = Chart::new("h", "a", "density")
            .with(Series::histogram(
                "l1",
                &[0.1, 0.2, 0.25, 0.9],
                4,
                (0.0, 1.0),
                0,
            ))
            .with(Series::histogram("l4", &[0.5, 0.6], 4, (0.0, 1.0), 1));
        let (x, y) = chart.ranges(None);
        assert_eq!(x, 0.0..1.0);
        assert_eq!(y.start, 0.0);
        assert!(y.end > 2.0);
    }

    #[test]
    fn a_heatmap_is_one_rectangle_per_cell_in_its_class_tint() {
        let cells = vec![vec![0, 0, 1], vec![0, 1, 1]];
        let points = vec![(0.5, 0.5), (2.5, 1.5)];
        let plain =
            Chart::new("classes", "x1", "x2").with(Series::scatter("class 0", points.clone(), 0));
        let with_cells = plain.clone().heatmap((0.0, 3.0), (0.0, 2.0), cells);
        let rects = |chart: &Chart| {
            let svg = render_svg(std::slice::from_ref(chart), 1).unwrap();
            svg.lines()
                .filter(|l| l.starts_with("<rect"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let (without, with) = (rects(&plain), rects(&with_cells));
        assert_eq!(with.len() - without.len(), 6);
        let fill = |class: usize| {
            let RGBColor(r, g, b) = tint(class);
            format!(r##"fill="#{r:02X}{g:02X}{b:02X}""##)
        };
        assert_eq!(with.iter().filter(|l| l.contains(&fill(0))).count(), 3);
        assert_eq!(with.iter().filter(|l| l.contains(&fill(1))).count(), 3);
        // The axes are the heatmap's, unpadded.
        assert_eq!(with_cells.ranges(None), (0.0..3.0, 0.0..2.0));
    }

    #[test]
    fn scatter_points_have_a_darker_edge_and_no_line() {
        let chart =
            Chart::new("s", "x", "y").with(Series::scatter("c", vec![(0.0, 0.0), (1.0, 1.0)], 1));
        let svg = render_svg(&[chart], 1).unwrap();
        let RGBColor(r, g, b) = PALETTE[1];
        let stroke = format!(r##"stroke="#{r:02X}{g:02X}{b:02X}""##);
        assert!(
            !svg.lines()
                .any(|l| l.starts_with("<polyline") && l.contains(&stroke)),
            "no line"
        );
        let circles: Vec<&str> = svg.lines().filter(|l| l.starts_with("<circle")).collect();
        // Two points and the legend's sample, each a fill and an edge.
        assert_eq!(circles.len(), 6);
        let RGBColor(r, g, b) = darker(PALETTE[1]);
        let edge = format!(r##"stroke="#{r:02X}{g:02X}{b:02X}""##);
        assert_eq!(circles.iter().filter(|c| c.contains(&edge)).count(), 3);
    }

    #[test]
    fn reference_lines_are_dashed_two_point_series() {
        let h = Series::hline("threshold", 0.2, (0.0, 40.0), 6);
        assert_eq!(h.points, [(0.0, 0.2), (40.0, 0.2)]);
        assert!(h.dashed && h.line);
        let v = Series::vline("", 3.0, (0.0, 1.0), 6);
        assert_eq!(v.points, [(3.0, 0.0), (3.0, 1.0)]);
        // An empty label has no legend entry.
        let chart = Chart::new("t", "x", "y")
            .with(v)
            .with(Series::new("a", vec![(0.0, 0.0)], 0));
        assert_eq!(LegendBox::new(&chart, 300.0).unwrap().entries.len(), 1);
    }

    #[test]
    fn the_legend_moves_to_a_free_corner_and_legend_room_keeps_its_corner_free() {
        // A line along the bottom, a point in the middle of the top: the lower corners are
        // covered, the upper left one (on the left, as asked) is free.
        let chart = Chart::new("t", "x", "y")
            .legend(Legend::LowerLeft)
            .with(Series::new("flat", vec![(0.0, 0.0), (2.0, 0.0)], 0))
            .with(Series::point("top", (1.0, 1.0), 1));
        let (x, y) = chart.ranges(None);
        let (x, y) = (
            Axis::new(x, false, 400.0, true),
            Axis::new(y, false, 280.0, false),
        );
        let legend = LegendBox::new(&chart, 300.0).unwrap();
        let covered = ink(&chart, &x, &y);
        assert_eq!(
            legend_corner(Legend::LowerLeft, &legend, (400.0, 280.0), &covered).0,
            Legend::UpperLeft
        );
        assert_eq!(
            legend_corner(Legend::UpperRight, &legend, (400.0, 280.0), &covered).0,
            Legend::UpperRight
        );

        // Lines everywhere, but with legend room the corner asked for is free.
        let busy = Chart::new("t", "x", "y")
            .legend(Legend::UpperRight)
            .with_legend_room()
            .with(Series::new(
                "a",
                vec![(0.0, 0.0), (1.0, 1.0), (2.0, 0.0)],
                0,
            ))
            .with(Series::new(
                "b",
                vec![(0.0, 1.0), (1.0, 0.0), (2.0, 1.0)],
                1,
            ));
        let legend = LegendBox::new(&busy, 300.0).unwrap();
        let fraction = (legend.height + LEGEND_INSET) / 280.0;
        let (x, y) = busy.ranges(Some((Legend::UpperRight, fraction)));
        let (x, y) = (
            Axis::new(x, false, 400.0, true),
            Axis::new(y, false, 280.0, false),
        );
        let covered = ink(&busy, &x, &y);
        assert_eq!(
            legend_corner(Legend::UpperRight, &legend, (400.0, 280.0), &covered).0,
            Legend::UpperRight
        );
    }

    /// Draws every kind of panel into one figure and checks that each panel made it into the
    /// file. To look at it: `PLOT_DEMO=/tmp/demo.svg cargo test -p examples --lib plot::tests::demo`
    /// (otherwise it goes to a per-process file in the temporary directory).
    #[test]
    fn demo() {
        let path = std::env::var_os("PLOT_DEMO")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::env::temp_dir().join(format!("plot_demo_{}.svg", std::process::id()))
            });
        let epochs: Vec<f64> = (0..=50).map(f64::from).collect();
        let band: Vec<(f64, f64, f64)> = epochs
            .iter()
            .map(|&e| {
                let m = 2.0 * (-e / 12.0).exp() + 0.3;
                (e, m * 0.8, m * 1.25)
            })
            .collect();
        let median: Vec<(f64, f64)> = band
            .iter()
            .map(|&(e, lo, hi)| (e, (lo * hi).sqrt()))
            .collect();
        let bands = Chart::new(
            "Training loss over 5 seeds (median and range)",
            "epoch",
            "cross-entropy (log scale)",
        )
        .log_y()
        .legend(Legend::UpperRight)
        .with(Series::band("range over seeds", band, 0))
        .with(Series::new("median", median, 0))
        .with(Series::hline("target 0.4", 0.4, (0.0, 50.0), 6));
        let rates: Vec<f64> = (0..=12)
            .map(|i| 10f64.powf(-6.0 + f64::from(i) * 0.5))
            .collect();
        let sweep = Chart::new(
            "Final loss per learning rate",
            "learning rate",
            "final loss",
        )
        .log_x()
        .log_y()
        .legend(Legend::UpperLeft)
        .with(
            Series::new(
                "raw",
                rates
                    .iter()
                    .map(|&r| (r, 0.7 / (1.0 + 1e4 * r) + 1e-3 * (1e6 * r).sqrt()))
                    .collect(),
                0,
            )
            .with_markers(),
        )
        .with(
            Series::new(
                "standardized",
                rates
                    .iter()
                    .map(|&r| (r, 0.7 / (1.0 + 1e6 * r) + 1e-4 / r.sqrt() * 1e-2))
                    .collect(),
                1,
            )
            .with_markers(),
        );
        let mut histograms = Chart::new("tanh activations per layer", "activation", "density");
        for (color, layer) in [1, 4, 7, 10].into_iter().enumerate() {
            let spread = 0.9 / f64::from(layer).sqrt();
            let values: Vec<f64> = (0..5000)
                .map(|i| ((f64::from(i) * 0.6180339887).fract() - 0.5) * 6.0 * spread)
                .map(|z: f64| z.tanh() * (-z * z / 8.0).exp())
                .collect();
            histograms = histograms.with(Series::histogram(
                format!("layer {layer}"),
                &values,
                40,
                (-1.0, 1.0),
                color,
            ));
        }
        let (rows, columns) = (40, 60);
        let cells: Vec<Vec<usize>> = (0..rows)
            .map(|i| {
                (0..columns)
                    .map(|j| {
                        let (x, y) = (
                            -3.0 + 6.0 * (f64::from(j) + 0.5) / 60.0,
                            -2.0 + 4.0 * (f64::from(i) + 0.5) / 40.0,
                        );
                        usize::from(y > (x * 1.5).sin())
                    })
                    .collect()
            })
            .collect();
        let mut heatmap =
            Chart::new("Decision regions", "x1", "x2").heatmap((-3.0, 3.0), (-2.0, 2.0), cells);
        for class in 0..2 {
            let points: Vec<(f64, f64)> = (0..40)
                .map(|i| {
                    let x = -2.8 + 5.6 * (f64::from(i) * 0.618).fract();
                    let d = 0.2 + 1.2 * (f64::from(i) * 0.377).fract();
                    (x, (x * 1.5).sin() + if class == 0 { -d } else { d })
                })
                .filter(|&(_, y)| y.abs() < 2.0)
                .collect();
            heatmap = heatmap.with(Series::scatter(format!("class {class}"), points, class));
        }
        let fractional = Chart::new(
            "Test accuracy per keep probability",
            "keep probability",
            "accuracy (%)",
        )
        .legend(Legend::LowerRight)
        .with(
            Series::new(
                "test",
                vec![(0.3, 91.0), (0.5, 95.5), (0.7, 97.2), (0.9, 97.0)],
                1,
            )
            .with_markers(),
        );
        let wide = Chart::new(
            "Loss of a diverging run next to others (1e-9 .. 1e3)",
            "epoch",
            "loss (log scale)",
        )
        .log_y()
        .legend(Legend::LowerLeft)
        .with_legend_room()
        .with(Series::new(
            "std 0.01",
            (0..=5).map(|e| (f64::from(e), 2.3)).collect(),
            0,
        ))
        .with(Series::new(
            "std 1 (initial loss 1e10, diverged in epoch 1)",
            Vec::new(),
            1,
        ))
        .with(Series::new(
            "He",
            (0..=5)
                .map(|e| (f64::from(e), 2.0 * 0.01f64.powf(f64::from(e))))
                .collect(),
            3,
        ));
        let charts = [bands, sweep, histograms, heatmap, fractional, wide];
        let titles: Vec<String> = charts.iter().map(|c| c.title.clone()).collect();
        write_svg(&path, &charts).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("<svg"), "not an SVG file");
        for title in &titles {
            assert!(
                svg.contains(title.as_str()),
                "panel {title:?} missing from the figure"
            );
        }
        // Every histogram layer, the scatter classes and the band are drawn with their labels.
        for label in [
            "layer 1",
            "layer 10",
            "class 0",
            "class 1",
            "range over seeds",
        ] {
            assert!(svg.contains(label), "label {label:?} missing");
        }
        if std::env::var_os("PLOT_DEMO").is_none() {
            std::fs::remove_file(&path).unwrap();
        }
    }
}
