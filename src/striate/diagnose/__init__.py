"""Diagnostics: gradient checking and (later) the training doctor."""

from .gradcheck import GradcheckReport, TensorCheck, gradcheck

__all__ = ["GradcheckReport", "TensorCheck", "gradcheck"]
