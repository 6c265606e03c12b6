"""Load a pinned artifact (sha256 first, then unpickle or open) and run predictions."""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np


class ArtifactError(Exception):
    """The artifact is missing, does not match its pinned sha256, or cannot be loaded."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # Open Inference Protocol datatype, e.g. FP64
    shape: tuple[int, ...]  # -1 for a dimension of any size


_DATATYPES = {"b": "BOOL", "f": "FP", "i": "INT", "u": "UINT"}


def datatype_of(dtype: np.dtype) -> str:
    """Protocol datatype of a numpy dtype; strings and objects travel as BYTES."""
    kind = _DATATYPES.get(dtype.kind)
    if kind is None:
        return "BYTES"
    return kind if kind == "BOOL" else f"{kind}{dtype.itemsize * 8}"


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: str, expected: str) -> None:
    """Refuse an artifact that is not byte for byte the one pinned in the spec."""
    if not os.path.isfile(path):
        raise ArtifactError(f"artifact {path} does not exist")
    actual = sha256_of(path)
    if actual != expected.lower():
        raise ArtifactError(f"artifact {path} has sha256 {actual}, expected {expected.lower()}")


class Model:
    """One loaded model. ``predict`` maps a 2-D batch to named output arrays."""

    platform = ""
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    n_features: int | None = None
    features: tuple[str, ...] = ()  # column names, for metadata and per-feature inputs
    input_dtype: np.dtype = np.dtype(np.float64)

    def predict(self, x: np.ndarray, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        raise NotImplementedError


def column_kinds(estimator: Any) -> dict[str, str]:
    """'text' or 'number' per column, read off the fitted ColumnTransformers: an encoder with
    categories_ takes text; anything else numbers. Columns it cannot tell are absent."""
    kinds: dict[str, str] = {}
    steps = list(getattr(estimator, "named_steps", {}).values()) or [estimator]
    for step in steps:
        for _, transformer, cols in getattr(step, "transformers_", ()):
            if transformer == "drop" or not isinstance(cols, (list, tuple)) or not all(isinstance(c, str) for c in cols):
                continue
            inner = list(getattr(transformer, "named_steps", {}).values()) or [transformer]
            text = any(hasattr(t, "categories_") for t in inner)
            kinds.update({c: "text" if text else "number" for c in cols})
    return kinds


class SklearnModel(Model):
    platform = "sklearn"

    def __init__(self, estimator: Any, features: tuple[str, ...]):
        if not hasattr(estimator, "predict"):
            raise ArtifactError(f"the artifact holds a {type(estimator).__name__}, not a model")
        self.estimator = estimator
        names = getattr(estimator, "feature_names_in_", None)
        # Fitted on a DataFrame (a Pipeline with a ColumnTransformer, string columns): it is called
        # with one, columns by name, so one-hot encoders see the text they were fitted on.
        self.frame = names is not None and all(isinstance(n, str) for n in names)
        self.kinds = column_kinds(estimator) if self.frame else {}
        self.features = features or (tuple(str(n) for n in names) if names is not None else ())
        n = getattr(estimator, "n_features_in_", None) or (len(features) or None)
        self.n_features = int(n) if n else None
        self.input_dtype = np.dtype(np.float64)
        self.inputs = (TensorSpec("input", "FP64", (-1, self.n_features or -1)),)
        outs = [TensorSpec("predict", self._label_datatype(), (-1,))]
        if hasattr(estimator, "predict_proba"):
            classes = len(getattr(estimator, "classes_", ())) or -1
            outs.append(TensorSpec("predict_proba", "FP64", (-1, classes)))
        self.outputs = tuple(outs)

    def frame_of(self, columns: dict):
        """A DataFrame of the named columns in fitted order (pandas: pinned with the model)."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ArtifactError("this model was fitted on a DataFrame: pin pandas in runtime.python_packages") from e
        return pd.DataFrame({f: columns[f] for f in self.features})

    def _label_datatype(self) -> str:
        classes = getattr(self.estimator, "classes_", None)
        return datatype_of(np.asarray(classes).dtype) if classes is not None else "FP64"

    def predict(self, x, names):
        # Output names are the estimator's method names: predict, predict_proba.
        return {name: np.asarray(getattr(self.estimator, name)(x)) for name in names}


_ONNX_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
               "tensor(int64)": np.int64, "tensor(int32)": np.int32}


class OnnxModel(Model):
    platform = "onnxruntime_onnx"

    def __init__(self, session: Any, features: tuple[str, ...]):
        self.session = session
        self.features = features
        first = session.get_inputs()[0]
        if len(session.get_inputs()) != 1 or first.type not in _ONNX_TYPES:
            raise ArtifactError("only ONNX models with one numeric tensor input are supported")
        self.input_name = first.name
        self.input_dtype = np.dtype(_ONNX_TYPES[first.type])
        k = first.shape[-1] if len(first.shape) == 2 else None
        self.n_features = k if isinstance(k, int) and k > 0 else None
        self.inputs = (TensorSpec("input", datatype_of(self.input_dtype),
                                  (-1, self.n_features or -1)),)
        # skl2onnx classifiers expose (label, probabilities); regressors a single variable.
        outs = session.get_outputs()[:2]
        self.onnx_outputs = [o.name for o in outs]
        label = _ONNX_TYPES.get(outs[0].type)
        specs = [TensorSpec("predict", datatype_of(np.dtype(label)) if label else "BYTES", (-1,))]
        if len(outs) > 1:
            specs.append(TensorSpec("predict_proba", "FP64", (-1, -1)))
        self.outputs = tuple(specs)

    def predict(self, x, names):
        results = self.session.run(self.onnx_outputs, {self.input_name: x})
        label = np.asarray(results[0])
        if label.ndim == 2 and label.shape[1] == 1:  # regressors answer [n, 1]; sklearn says [n]
            label = label[:, 0]
        out = {"predict": label}
        if len(results) > 1:
            proba = results[1]
            if isinstance(proba, list):  # ZipMap output: one {class: probability} per row
                proba = [list(row.values()) for row in proba]
            out["predict_proba"] = np.asarray(proba, dtype=np.float64)
        return {name: out[name] for name in names}


def _checked(model: Model) -> Model:
    if model.features and model.n_features and len(model.features) != model.n_features:
        raise ArtifactError(f"{len(model.features)} feature names given (MLSPEC_FEATURES) but "
                            f"the model takes {model.n_features} features")
    return model


def load(path: str, expected_sha256: str, framework: str, features: tuple[str, ...] = ()) -> Model:
    """Verify the artifact's sha256, then load it. Raises ArtifactError on any failure."""
    verify(path, expected_sha256)
    try:
        if framework == "onnx":
            import onnxruntime  # optional: only images that serve ONNX carry it

            session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            return _checked(OnnxModel(session, features))
        import joblib  # reads plain pickles as well as joblib dumps

        # Models fitted on a DataFrame warn on every ndarray call; the protocol sends arrays.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        return _checked(SklearnModel(joblib.load(path), features))
    except ArtifactError:
        raise
    except ImportError as e:
        raise ArtifactError(f"cannot load a {framework} artifact: {e}") from e
    except Exception as e:  # any unpickling or parsing failure is a broken artifact
        raise ArtifactError(f"cannot load {path} as {framework}: {type(e).__name__}: {e}") from e
