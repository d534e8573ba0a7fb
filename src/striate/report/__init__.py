"""Reports: report.html with embedded plots for a run directory, a page comparing runs, and the style
every striate page shares; in a notebook, the same pages inline (`show`) and the training curves redrawn in
place while a fit runs (`LiveCurves`). matplotlib is imported only when a page is drawn (`report.figure`), so
importing this package stays light."""

from .callback import ReportWriter
from .compare import write_comparison
from .html import verdict_table, write_report
from .inline import show
from .live import LiveCurves

__all__ = ["LiveCurves", "ReportWriter", "show", "verdict_table", "write_comparison", "write_report"]
