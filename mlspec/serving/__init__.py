"""The built-in model server shipped inside serving images (DESIGN.md §6).

This package is copied into the image and run there with only the standard library, numpy,
scikit-learn, joblib, prometheus_client and (optionally) onnxruntime. It must therefore import
nothing from the rest of ``mlspec``; ``tests/serving/test_isolation.py`` enforces that.
"""

# Kept in step with mlspec.__version__ by a test; duplicated because this package ships alone.
__version__ = "0.1.0"
