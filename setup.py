from setuptools import find_packages, setup

setup(
    name="msvision",
    version="0.1.0",
    description="VGG and VoVNet image classification on MindSpore (Ascend, GPU, CPU)",
    packages=find_packages(include=["msvision", "msvision.*"]),
    package_data={"msvision.data": ["*.npz"]},
    python_requires=">=3.9",
    install_requires=[
        "mindspore==2.10.*",
        # MindSpore 2.10's C extension is built against NumPy 1.x (some ops fail under NumPy 2).
        "numpy>=1.25,<2",
        "pyyaml",
        "pillow",
    ],
    extras_require={
        # torch is pinned: 2.13.0 is the CPU build; an unpinned torch pulls the CUDA wheels. timm and torchvision are
        # pinned too: they are the parity references of the tests (their layouts and numerics decide a green run).
        "convert": ["torch==2.13.0", "timm==1.0.31", "torchvision==0.28.0"],
        # ONNX export (opset 13 + metadata), int8 quantization and ONNX evaluation (validate.py --onnx); ml_dtypes is
        # pinned to a release that pip resolves under numpy < 2 (onnx alone pulls NumPy 2 in through it)
        "deploy": ["onnx==1.23.2", "onnxruntime==1.32.0", "ml_dtypes==0.5.4"],
        # the versions CI ran; pytest-xdist runs the suite on 2 cores
        "dev": ["pytest==9.0.3", "pytest-xdist==3.8.0"],
        "plot": ["matplotlib"],  # scripts/plot_run.py, inspect_data.py --plot, validate.py --confusion
        # pretrained: timm's hub files (.safetensors) without torch; huggingface_hub honours HF_ENDPOINT mirrors
        "weights": ["safetensors", "huggingface_hub"],
    },
)
