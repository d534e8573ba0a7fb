"""Reports: report.html with embedded plots for a run directory, a page comparing runs, and the style
every striate page shares. matplotlib is imported only when a page is drawn (`report.figure`), so
importing this package stays light."""

from .callback import ReportWriter
from .compare import write_comparison
from .html import verdict_table, write_report

__all__ = ["ReportWriter", "verdict_table", "write_comparison", "write_report"]
