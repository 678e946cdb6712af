"""The ``onboarding`` workflow's steps: OCR → extraction → fraud score → rules → (approval) → welcome.

Importing this package registers ``onboarding-ocr``, ``onboarding-extract``, ``onboarding-fraud``,
``onboarding-decide`` and ``onboarding-welcome``. Modules: :mod:`.document` renders test passports,
:mod:`.ocr` reads them (Tesseract), :mod:`.mrz` and :mod:`.extract` parse them, :mod:`.fraud` trains
and applies the fraud model, :mod:`.rules` is the declarative rules engine, :mod:`.welcome` greets,
:mod:`.accuracy` measures OCR field accuracy.
"""

from steps.onboarding import extract, fraud, ocr, rules, welcome

__all__ = ["extract", "fraud", "ocr", "rules", "welcome"]
