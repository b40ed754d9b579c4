//! Accuracy and coverage against compute: one point per method, or one line per method
//! over the budgets of a `--budgets` run.

use std::path::Path;

use plotters::prelude::*;

use crate::journal::write_file;
use crate::report::MethodSummary;

/// What can go wrong drawing the plot.
#[derive(Debug, thiserror::Error)]
#[error("plot {path}: {reason}")]
pub struct PlotError {
    /// The SVG file.
    pub path: std::path::PathBuf,
    /// What failed.
    pub reason: String,
}

/// Matplotlib's tab10 and four more: issue 16's evidence plots 14 variants, and with five
/// colours every third line looked like another.
const COLORS: [RGBColor; 14] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(0, 0, 139),
    RGBColor(139, 0, 0),
    RGBColor(0, 100, 0),
];

/// The plot's size, and the legend's column to its right. The legend used to sit inside
/// the plot, where with 14 methods (28 entries) it covered most of the points.
const CHART: (u32, u32) = (720, 480);
const LEGEND_WIDTH: u32 = 360;
const LEGEND_ROW: i32 = 20;
/// The legend's first row (below its two heading lines), in pixels from its top.
const LEGEND_TOP: i32 = 58;
/// Above this many methods a lone point is named by the legend only (their names beside
/// the points overlap).
const MAX_POINT_NAMES: usize = 5;

/// Writes an SVG of accuracy (with its Wilson 95% interval as a bar) and coverage
/// (hollow triangles, dashed) against mean generated tokens per problem, the axis the
/// methods trade along. Rows of one method at several budgets (`mcts@256`,
/// `mcts@512`, ...) are joined into a line: the test-time scaling curve.
///
/// The SVG is drawn in memory and then written at once, so a failed write (a full disk)
/// is an error here and leaves no truncated file behind (plotters' own file target writes
/// through a `BufWriter` whose final flush drops its error).
pub fn plot_accuracy_vs_tokens(rows: &[MethodSummary], path: &Path) -> Result<(), PlotError> {
    let err = |reason: String| PlotError {
        path: path.to_path_buf(),
        reason,
    };
    let mut svg = String::new();
    draw(rows, &mut svg).map_err(err)?;
    write_file(path, svg.as_bytes()).map_err(|e| err(e.to_string()))
}

/// Draws the plot as SVG into `svg`.
fn draw(rows: &[MethodSummary], svg: &mut String) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    // Rows grouped by method (the label before `@`), in order of first appearance, each
    // group ordered by tokens.
    let mut groups: Vec<(String, Vec<&MethodSummary>)> = Vec::new();
    for r in rows {
        let name = r.method.split('@').next().unwrap_or(&r.method).to_string();
        match groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, g)) => g.push(r),
            None => groups.push((name, vec![r])),
        }
    }
    for (_, g) in &mut groups {
        g.sort_by(|a, b| a.mean_generated.total_cmp(&b.mean_generated));
    }
    let max_x = rows.iter().map(|r| r.mean_generated).fold(0.0f64, f64::max);
    let x_hi = if max_x > 0.0 { max_x * 1.2 } else { 1.0 };
    let max_y = rows
        .iter()
        .map(|r| (r.ci.1 * 100.0).max(r.coverage * 100.0))
        .fold(0.0f64, f64::max);
    let y_hi = (max_y + 5.0).clamp(10.0, 100.0);

    // Room for every legend row and half a row below the last.
    let rows_high = LEGEND_TOP - LEGEND_ROW / 2
        + LEGEND_ROW * i32::try_from(groups.len()).unwrap_or(i32::MAX / 64);
    let height = CHART.1.max(u32::try_from(rows_high).unwrap_or(CHART.1));
    let root = SVGBackend::with_string(svg, (CHART.0 + LEGEND_WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (plot_area, legend_area) = root.split_horizontally(CHART.0);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption("Accuracy and coverage vs. compute", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_hi, 0.0..y_hi)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("mean generated tokens per problem")
        .y_desc("accuracy / coverage (%)")
        .draw()
        .map_err(|e| err(&e))?;
    let tick = x_hi * 0.01;
    for (i, (_, g)) in groups.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let acc: Vec<(f64, f64)> = g
            .iter()
            .map(|r| (r.mean_generated, r.accuracy * 100.0))
            .collect();
        let cov: Vec<(f64, f64)> = g
            .iter()
            .map(|r| (r.mean_generated, r.coverage * 100.0))
            .collect();
        if g.len() > 1 {
            chart
                .draw_series(LineSeries::new(acc.clone(), color.stroke_width(2)))
                .map_err(|e| err(&e))?;
            chart
                .draw_series(DashedLineSeries::new(
                    cov.clone(),
                    6,
                    4,
                    color.stroke_width(1),
                ))
                .map_err(|e| err(&e))?;
        }
        for r in g {
            let x = r.mean_generated;
            let (lo, hi) = (r.ci.0 * 100.0, r.ci.1 * 100.0);
            chart
                .draw_series([
                    PathElement::new(vec![(x, lo), (x, hi)], color.stroke_width(2)),
                    PathElement::new(vec![(x - tick, lo), (x + tick, lo)], color.stroke_width(2)),
                    PathElement::new(vec![(x - tick, hi), (x + tick, hi)], color.stroke_width(2)),
                ])
                .map_err(|e| err(&e))?;
        }
        chart
            .draw_series(acc.iter().map(|&p| Circle::new(p, 6, color.filled())))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(cov.iter().map(|&p| TriangleMarker::new(p, 6, color)))
            .map_err(|e| err(&e))?;
        // A lone point is named beside it while few are drawn; a line is named by the
        // legend only (names of several budgets' points overlap).
        let named = g.len() == 1 && groups.len() <= MAX_POINT_NAMES;
        for r in g.iter().filter(|_| named) {
            chart
                .draw_series([Text::new(
                    r.method.clone(),
                    (r.mean_generated + tick * 1.5, r.accuracy * 100.0),
                    ("sans-serif", 14),
                )])
                .map_err(|e| err(&e))?;
        }
    }
    legend(&legend_area, &groups)?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// The legend, one row per method in the column right of the plot: its accuracy and
/// coverage markers and its figures at its largest budget.
fn legend(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    groups: &[(String, Vec<&MethodSummary>)],
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let font = ("sans-serif", 13);
    area.draw(&Text::new(
        "filled: accuracy (bar: 95% CI), hollow: coverage",
        (4, 16),
        font,
    ))
    .map_err(|e| err(&e))?;
    area.draw(&Text::new("at each method's most tokens:", (4, 30), font))
        .map_err(|e| err(&e))?;
    for (i, (name, g)) in groups.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let y = LEGEND_TOP + LEGEND_ROW * i32::try_from(i).unwrap_or(0);
        let last = g.last();
        let acc = last.map_or(0.0, |r| r.accuracy * 100.0);
        let cov = last.map_or(0.0, |r| r.coverage * 100.0);
        area.draw(&Circle::new((12, y), 5, color.filled()))
            .map_err(|e| err(&e))?;
        area.draw(&TriangleMarker::new((28, y), 5, color))
            .map_err(|e| err(&e))?;
        area.draw(&Text::new(
            format!("{name}: accuracy {acc:.1}%, coverage {cov:.1}%"),
            (40, y - 7),
            font,
        ))
        .map_err(|e| err(&e))?;
    }
    Ok(())
}
