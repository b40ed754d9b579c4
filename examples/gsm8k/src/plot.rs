//! Accuracy against compute, one point per method.

use std::path::Path;

use plotters::prelude::*;

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

const COLORS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

/// Writes an SVG of accuracy (with its Wilson 95% interval as a bar) against mean
/// generated tokens per problem, the axis the methods trade along.
pub fn plot_accuracy_vs_tokens(rows: &[MethodSummary], path: &Path) -> Result<(), PlotError> {
    let err = |e: &dyn std::fmt::Display| PlotError {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let max_x = rows.iter().map(|r| r.mean_generated).fold(0.0f64, f64::max);
    let x_hi = if max_x > 0.0 { max_x * 1.2 } else { 1.0 };
    let max_y = rows.iter().map(|r| r.ci.1 * 100.0).fold(0.0f64, f64::max);
    let y_hi = (max_y + 5.0).clamp(10.0, 100.0);

    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Accuracy vs. compute per method", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_hi, 0.0..y_hi)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("mean generated tokens per problem")
        .y_desc("accuracy (%)")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, r) in rows.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let x = r.mean_generated;
        let (lo, hi) = (r.ci.0 * 100.0, r.ci.1 * 100.0);
        let tick = x_hi * 0.01;
        chart
            .draw_series([
                PathElement::new(vec![(x, lo), (x, hi)], color.stroke_width(2)),
                PathElement::new(vec![(x - tick, lo), (x + tick, lo)], color.stroke_width(2)),
                PathElement::new(vec![(x - tick, hi), (x + tick, hi)], color.stroke_width(2)),
            ])
            .map_err(|e| err(&e))?;
        chart
            .draw_series([Circle::new((x, r.accuracy * 100.0), 6, color.filled())])
            .map_err(|e| err(&e))?
            .label(format!("{} ({:.1}%)", r.method, r.accuracy * 100.0))
            .legend(move |(lx, ly)| Circle::new((lx + 10, ly), 5, color.filled()));
        chart
            .draw_series([Text::new(
                r.method.clone(),
                (x + tick * 1.5, r.accuracy * 100.0),
                ("sans-serif", 14),
            )])
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
