"""Run under the SageMaker XGBoost container's Python and pins (``requirements-container.lock``): the
endpoint's and the Batch Transform's scripts answer the requests given on stdin; their answers are
printed as JSON on stdout, for ``test_container_python.py`` to compare with this machine's.

    python tests/container_check.py < spec.json
"""

import importlib.util
import json
import os
import sys
from importlib import metadata


def script(code_dir: str, name: str):
    spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(code_dir, name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    from churn_pipeline import serving

    spec = json.load(sys.stdin)
    os.environ.update(spec["environment"])
    sys.path.insert(0, spec["code_dir"])
    endpoint = serving.host_app(
        script(spec["code_dir"], "serve_endpoint.py"),
        spec["model_dir"],
        spec["environment"]["SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"],
    ).test_client()
    answers = []
    for request in spec["requests"]:
        answer = endpoint.post("/invocations", data=request["body"].encode(), headers=request["headers"])
        answers.append([answer.status_code, answer.headers.get("Content-Type"), answer.get_data(as_text=True)])
    transform = script(spec["code_dir"], "score_transform.py")
    model = transform.model_fn(spec["model_dir"])
    scored, _ = transform.output_fn(
        transform.predict_fn(transform.input_fn(spec["rows"], "text/csv"), model), "text/csv"
    )
    versions = {name: metadata.version(name) for name in ("xgboost", "numpy", "pandas", "flask", "werkzeug")}
    print(
        json.dumps({"python": list(sys.version_info[:2]), "versions": versions, "answers": answers, "scored": scored})
    )


if __name__ == "__main__":
    main()
