"""The risk model: features known when a payment is authorised, and a small explainable scorer.

Pure Python at run time (no numpy, no scikit-learn): the model is a logistic regression whose
weights ship as JSON (``model.json``), so every score can be taken apart into per-feature
contributions. ``benchmarks/train_risk_model.py`` trains it with scikit-learn on labelled data
from ``synthetic.py`` (seeded, so the artifact is reproducible) and writes ``docs/risk-model.md``.
"""

from ledgerlink.risk.features import (
    FEATURES,
    CustomerHistory,
    FeatureSettings,
    FeatureValue,
    PaymentFacts,
    extract,
)
from ledgerlink.risk.model import RiskModel, RiskModelError, default_model

__all__ = [
    "FEATURES",
    "CustomerHistory",
    "FeatureSettings",
    "FeatureValue",
    "PaymentFacts",
    "RiskModel",
    "RiskModelError",
    "default_model",
    "extract",
]
