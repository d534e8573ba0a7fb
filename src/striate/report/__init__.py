"""Reports: report.html with embedded plots for a run directory, and runs overlaid. matplotlib is imported
only when a page is drawn (`report.plots`), so importing this package stays light."""

from .callback import ReportWriter
from .html import verdict_table, write_comparison, write_report

__all__ = ["ReportWriter", "verdict_table", "write_comparison", "write_report"]
