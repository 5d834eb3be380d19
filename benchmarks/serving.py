"""4. Serving: the project's ONNX prediction API against scikit-learn and bare onnxruntime.

One model, the pipeline's (same data, split, forest and conversion), served three
ways in one process: ``IrisOnnxPredictor.predict`` (labels and probabilities),
scikit-learn's ``predict_proba`` plus the label it implies (what ``predict`` does
inside, so scikit-learn is not charged for computing the forest twice), and a
bare onnxruntime session (``session.run``) with the API's session options. Calls are interleaved in small
blocks, so a burst of load elsewhere hits all three alike.
"""

import time

import numpy as np

from benchmarks.harness import Row, Sample

BLOCK = 20  # calls per block; blocks of the three contenders alternate


def pipeline_model():
    """The forest the pipeline trains, and its ONNX bytes, built with the pipeline's own functions."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    from iris_assets.data.schema import FEATURES, load_bundled_iris
    from iris_assets.packaging.onnx import to_onnx

    frame = load_bundled_iris().frame
    X_train, _, y_train, _ = train_test_split(
        frame[FEATURES], frame["species"], test_size=0.2, random_state=42, stratify=frame["species"]
    )
    forest = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=42).fit(X_train, y_train)
    return forest, to_onnx(forest, len(FEATURES)), frame[FEATURES]


def contenders(forest, onnx_bytes: bytes):
    import onnxruntime as ort

    from iris_assets.serving import IrisOnnxPredictor

    predictor = IrisOnnxPredictor(onnx_bytes)
    # The same session options as the API's (one intra-op thread), so the ratio is the API's own cost.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    bare = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    bare_input = bare.get_inputs()[0].name

    def sklearn_predict(frame, _array):
        probabilities = forest.predict_proba(frame)
        return forest.classes_[probabilities.argmax(axis=1)], probabilities

    return {
        "api": lambda _frame, array: predictor.predict(array),
        "sklearn": sklearn_predict,
        "onnxruntime": lambda _frame, array: bare.run(None, {bare_input: array}),
    }


def latencies(functions, frame, array, calls: int) -> dict[str, Sample]:
    samples = {name: Sample(name, unit="ms") for name in functions}
    names = list(functions)
    for block in range(max(1, calls // BLOCK)):
        shift = block % len(names)
        for name in names[shift:] + names[:shift]:
            function = functions[name]
            for _ in range(BLOCK):
                start = time.perf_counter()
                function(frame, array)
                samples[name].values.append((time.perf_counter() - start) * 1000)
    return samples


def run(single_calls: int, batch_repetitions: int, batch_rows: int = 10_000) -> list[Row]:
    forest, onnx_bytes, features = pipeline_model()
    functions = contenders(forest, onnx_bytes)
    # Inputs built once, outside the timing: a one-row DataFrame for scikit-learn (it
    # was fitted with column names), a float32 array for ONNX.
    one_frame = features.iloc[[0]]
    one_array = one_frame.to_numpy(dtype=np.float32)
    rng = np.random.default_rng(0)
    batch_frame = features.sample(batch_rows, replace=True, random_state=rng)
    batch_array = batch_frame.to_numpy(dtype=np.float32)
    for function in functions.values():  # warm-up
        function(one_frame, one_array)
        function(batch_frame, batch_array)

    single = latencies(functions, one_frame, one_array, single_calls)
    batch = latencies_blocks(functions, batch_frame, batch_array, batch_repetitions)
    p99 = {name: Sample(f"{name} p99", [s.percentile(99)], unit="ms") for name, s in single.items()}
    rows_per_s = {
        name: Sample(name, [batch_rows / (v / 1000) for v in s.values], unit="rows/s") for name, s in batch.items()
    }
    return [
        Row(
            "4. Serving",
            "single row p50: scikit-learn / project API (times faster)",
            single["sklearn"],
            single["api"],
            goal=">= 100",
        ),
        Row("4. Serving", "single row p99: scikit-learn / project API (times faster)", p99["sklearn"], p99["api"]),
        Row(
            "4. Serving",
            "single row p50: project API / bare onnxruntime",
            single["api"],
            single["onnxruntime"],
            goal="<= 1.5",
        ),
        Row("4. Serving", "single row p99: project API / bare onnxruntime", p99["api"], p99["onnxruntime"]),
        Row(
            "4. Serving",
            f"{batch_rows:,}-row batch throughput: project API / scikit-learn (times faster)",
            rows_per_s["api"],
            rows_per_s["sklearn"],
        ),
        Row(
            "4. Serving",
            f"{batch_rows:,}-row batch throughput: bare onnxruntime / project API",
            rows_per_s["onnxruntime"],
            rows_per_s["api"],
        ),
    ]


def latencies_blocks(functions, frame, array, repetitions: int) -> dict[str, Sample]:
    """One call per contender per round, rotating the order."""
    samples = {name: Sample(name, unit="ms") for name in functions}
    names = list(functions)
    for round_ in range(repetitions):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            functions[name](frame, array)
            samples[name].values.append((time.perf_counter() - start) * 1000)
    return samples
