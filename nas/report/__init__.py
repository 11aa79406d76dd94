"""Reports: trials.csv, pareto.csv and figures, LaTeX tables, and architecture references."""
