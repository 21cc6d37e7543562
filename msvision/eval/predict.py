"""A trained model for evaluation and prediction: built from its checkpoint, its class names, top-k predictions."""
import numpy as np
import mindspore as ms

from msvision.data.loaders import eval_transforms, preprocessing
from msvision.errors import MsvisionError
from msvision.models import create_model
from msvision.weights.io import CLASS_NAMES_KEY


def class_names(state, num_classes):
    """Class names stored at training time in a checkpoint's state entries (None when it holds none for
    num_classes classes)."""
    names = state.get(CLASS_NAMES_KEY)
    if isinstance(names, str) and len(names.split("\n")) == num_classes:
        return names.split("\n")
    return None


def model_for_evaluation(model, checkpoint_path, num_classes=None, use_ema=False, **model_args):
    """create_model with a checkpoint's weights (its EMA weights with use_ema), in eval mode; a RepVGG checkpoint
    in either form builds that form."""
    net = create_model(model, checkpoint_path=checkpoint_path, num_classes=num_classes, use_ema=use_ema,
                       any_form=True, **model_args)
    net.set_train(False)
    return net


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def read_preprocessed(path, operations):
    """One image file through the eval preprocessing (operations: eval_transforms(...)): a 3 x size x size array."""
    try:
        with open(path, "rb") as handle:
            image = np.frombuffer(handle.read(), np.uint8)
        for operation in operations:
            image = operation(image)
    except (OSError, RuntimeError, ValueError) as err:
        raise MsvisionError(f"cannot read image '{path}': {str(err).splitlines()[0]}") from None
    return image


def predict_files(net, paths, preprocess, top_k=5):
    """Top-k (class index, probability) for each image file, with the eval preprocessing (preprocess:
    data.loaders.preprocessing's arguments)."""
    operations = eval_transforms(preprocessing(**preprocess))
    results = []
    for path in paths:
        image = read_preprocessed(path, operations)
        probs = softmax(net(ms.Tensor(image[None])).asnumpy().astype(np.float64))[0]
        order = np.argsort(-probs)[:top_k]
        results.append([(int(i), float(probs[i])) for i in order])
    return results
