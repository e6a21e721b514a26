# Worker image for the labeling job on Dataflow GPU workers (docs/scaling.md#labeling-on-dataflow):
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/noisy-student:latest .
# Beam's Python 3.11 SDK image of the pinned Beam version (its boot entry point
# starts the worker), the pinned requirements with TensorFlow's CUDA libraries
# (they resolve together with requirements.txt in one pip run), then this
# project from pyproject.toml. Not built in this repository's tests: no Docker there.
FROM apache/beam_python3.11_sdk:2.77.0
WORKDIR /opt/noisy-student
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt "tensorflow[and-cuda]==2.21.0"
COPY . .
RUN pip install --no-cache-dir --no-deps --no-build-isolation . && rm -rf build *.egg-info
