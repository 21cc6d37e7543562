"""pretrained: a real HTTP server on loopback serves generated files in each source's layout (the table pointed at
it by MSVISION_WEIGHTS_TABLE); fetched once, verified, converted once, loaded with the reference's logits."""
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import mindspore as ms
import pytest

import msvision
from tests.conftest import REPO_ROOT, error_line, relative_difference, run_msrun, run_cli
from tests.ref_1e100 import Reference1e100


class Files(http.server.BaseHTTPRequestHandler):
    """Serves Files.content[path]; counts requests per path; a path in Files.cut sends half and closes; answers
    after Files.delay seconds (a slow network, so that concurrent fetches overlap)."""
    content, requests, cut, delay = {}, {}, set(), 0.0

    def do_GET(self):  # noqa: N802 (http.server's name)
        Files.requests[self.path] = Files.requests.get(self.path, 0) + 1
        time.sleep(Files.delay)
        data = Files.content.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:len(data) // 2] if self.path in Files.cut else data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(torch_reference, tmp_path_factory):
    """(base URL, {model: (published bytes, reference logits of IMAGES)}): vovnet19 in 1e100's layout (.pt),
    ese_vovnet19b_dw and repvgg_a0 in timm's (model.safetensors)."""
    torch, timm, _ = torch_reference
    from safetensors.numpy import save_file

    from tests.references import randomise_batchnorm

    folder = tmp_path_factory.mktemp("published")
    torch.manual_seed(0)
    e100 = randomise_batchnorm(torch, Reference1e100("vovnet19", num_classes=1000)).eval()
    torch.save(e100.state_dict(), folder / "vovnet19.pt")
    tm = randomise_batchnorm(torch, timm.create_model("ese_vovnet19b_dw", num_classes=1000)).eval()
    save_file({k: v.numpy() for k, v in tm.state_dict().items()}, str(folder / "model.safetensors"))
    rep = randomise_batchnorm(torch, timm.create_model("repvgg_a0", num_classes=1000)).eval()
    save_file({k: v.numpy() for k, v in rep.state_dict().items()}, str(folder / "repvgg.safetensors"))
    with torch.no_grad():
        logits = {name: model(torch.from_numpy(IMAGES)).numpy() for name, model in (("vovnet19", e100),
                                                                                    ("ese_vovnet19b_dw", tm),
                                                                                    ("repvgg_a0", rep))}
    Files.content = {"/1e100/vovnet19-72.03-top1.pt": (folder / "vovnet19.pt").read_bytes(),
                     "/timm/ese_vovnet19b_dw.ra_in1k/model.safetensors": (folder / "model.safetensors").read_bytes(),
                     "/timm/repvgg_a0.rvgg_in1k/model.safetensors": (folder / "repvgg.safetensors").read_bytes()}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", logits
    httpd.shutdown()


IMAGES = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)
PATHS = {"vovnet19": ("1e100", "/1e100/vovnet19-72.03-top1.pt"),
         "ese_vovnet19b_dw": ("timm", "/timm/ese_vovnet19b_dw.ra_in1k/model.safetensors"),
         "repvgg_a0": ("timm", "/timm/repvgg_a0.rvgg_in1k/model.safetensors")}


def table(tmp_path, base, **changes):
    """A MSVISION_WEIGHTS_TABLE pointing both entries at the server, with their real size and sha256."""
    entries = {}
    for model, (source, path) in PATHS.items():
        data = Files.content[path]
        entries[f"{model}:{source}"] = dict(url=base + path, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        entries[f"{model}:{source}"].update(changes.get(model, {}))
    file = tmp_path / "table.json"
    file.write_text(json.dumps(entries))
    return str(file)


@pytest.fixture
def weights_env(tmp_path, monkeypatch, server):
    monkeypatch.setenv("MSVISION_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MSVISION_WEIGHTS_TABLE", table(tmp_path, server[0]))
    monkeypatch.delenv("MSVISION_WEIGHTS", raising=False)
    Files.requests.clear()
    return server


def logits_error(net, expected):
    net.set_train(False)
    return relative_difference(net(ms.Tensor(IMAGES)).asnumpy(), expected)


@pytest.mark.parametrize("model", list(PATHS))
def test_fetched_once_verified_converted_once_with_parity(weights_env, model):
    base, logits = weights_env
    source, path = PATHS[model]
    net = msvision.create_model(model, pretrained=True)
    error = logits_error(net, logits[model])
    print(f"{model} ({source}): logits {error:.2e} from the reference; requests {Files.requests}")
    assert error <= 1e-5 and Files.requests == {path: 1}
    cached = sorted(os.listdir(os.path.join(os.environ["MSVISION_CACHE"], "weights")))
    converted = [os.path.join(os.environ["MSVISION_CACHE"], "weights", n) for n in cached if n.endswith(".ckpt")]
    assert len(converted) == 1 and not [n for n in cached if "partial" in n]
    written = os.stat(converted[0]).st_mtime_ns
    again = msvision.create_model(model, pretrained=source, num_classes=7)  # the cached .ckpt; a new head
    assert Files.requests == {path: 1} and os.stat(converted[0]).st_mtime_ns == written  # not converted again
    head = again.parameters_dict()[msvision.get_pretrained_cfg(model).classifier + ".weight"]
    assert head.shape[0] == 7
    assert logits_error(msvision.create_model(model, pretrained=True), logits[model]) <= 1e-5


def test_a_wrong_hash_or_a_cut_download_keeps_nothing(tmp_path, monkeypatch, server):
    base, _ = server
    monkeypatch.setenv("MSVISION_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MSVISION_WEIGHTS_TABLE", table(tmp_path, base, vovnet19={"sha256": "0" * 64}))
    with pytest.raises(msvision.MsvisionError) as err:
        msvision.create_model("vovnet19", pretrained=True)
    assert str(err.value).startswith(f"{base}/1e100/vovnet19-72.03-top1.pt does not match its published file "
                                     f"(sha256 ") and str(err.value).endswith(f"published {'0' * 64})")
    assert os.listdir(tmp_path / "cache" / "weights") == ["vovnet19-72.03-top1.pt.vovnet19.ckpt.lock"]
    monkeypatch.setenv("MSVISION_WEIGHTS_TABLE", table(tmp_path, base))
    Files.cut = {"/1e100/vovnet19-72.03-top1.pt"}
    try:
        size = len(Files.content["/1e100/vovnet19-72.03-top1.pt"])
        with pytest.raises(msvision.MsvisionError, match=rf"^the download of {base}/1e100/vovnet19-72.03-top1.pt "
                                                         rf"ended after \d+ of {size} bytes; nothing was kept"):
            msvision.create_model("vovnet19", pretrained=True)
    finally:
        Files.cut = set()
    assert os.listdir(tmp_path / "cache" / "weights") == ["vovnet19-72.03-top1.pt.vovnet19.ckpt.lock"]


def test_msvision_weights_folder_wins_over_the_network(tmp_path, monkeypatch, weights_env):
    _, logits = weights_env
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "vovnet19-72.03-top1.pt").write_bytes(Files.content["/1e100/vovnet19-72.03-top1.pt"])
    monkeypatch.setenv("MSVISION_WEIGHTS", str(offline))
    assert logits_error(msvision.create_model("vovnet19", pretrained=True), logits["vovnet19"]) <= 1e-5
    assert Files.requests == {}


@pytest.mark.slow
def test_no_network_and_no_file_is_one_line(tmp_path, server):
    env = dict(os.environ, MSVISION_CACHE=str(tmp_path / "cache"),
               MSVISION_WEIGHTS_TABLE=table(tmp_path, "http://127.0.0.1:9"))  # nothing listens on port 9
    done = subprocess.run([sys.executable, "validate.py", "--model", "vovnet19", "--pretrained", "--data_dir",
                           str(tmp_path)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    line = error_line(done)
    assert line.startswith("error: cannot download http://127.0.0.1:9/1e100/vovnet19-72.03-top1.pt (")
    assert line.endswith(f"without network, place vovnet19-72.03-top1.pt in a folder named by MSVISION_WEIGHTS, "
                             f"or at {tmp_path}/cache/weights/vovnet19-72.03-top1.pt")


@pytest.mark.slow
def test_pretrained_mistakes_are_one_line(tmp_path, image_folder):
    unpublished = run_cli(["validate.py", "--model", "vgg16", "--pretrained", "mindcv", "--data_dir", image_folder],
                          check=False)
    assert error_line(unpublished) == "error: no mindcv weights for vgg16 (sources: torchvision, timm)"
    both = run_cli(["train.py", "--model", "vgg11", "--pretrained", "--ckpt_path", tmp_path / "x.ckpt", "--data_dir",
                    image_folder, "--ckpt_save_dir", tmp_path / "run"], check=False)
    assert error_line(both) == "error: pretrained and ckpt_path both name initial weights: set one of them"
    assert not os.path.exists(tmp_path / "run")


BLOCK_TORCH = "import sys; sys.modules['torch'] = None\n"


@pytest.mark.slow
def test_safetensors_convert_without_torch(tmp_path, weights_env):
    """timm's model.safetensors read through safetensors' numpy API in a process where torch cannot be imported."""
    _, logits = weights_env
    np.save(tmp_path / "images.npy", IMAGES)
    code = BLOCK_TORCH + (
        "import numpy as np, mindspore as ms, msvision\n"
        "net = msvision.create_model('ese_vovnet19b_dw', pretrained='timm'); net.set_train(False)\n"
        f"np.save({str(tmp_path / 'ours.npy')!r}, net(ms.Tensor(np.load({str(tmp_path / 'images.npy')!r}))).asnumpy())\n")
    run_cli(["-c", code])
    ours, expected = np.load(tmp_path / "ours.npy"), logits["ese_vovnet19b_dw"]
    assert relative_difference(ours, expected) <= 1e-5


@pytest.mark.slow
def test_two_msrun_workers_download_once(tmp_path, weights_env, free_port):
    script = tmp_path / "fetch.py"
    script.write_text("import msvision\nmsvision.create_model('vovnet19', pretrained=True)\nprint('loaded')\n")
    Files.delay = 5.0  # both workers ask within the first one's download
    try:
        run_msrun(tmp_path / "logs", free_port, script)
    finally:
        Files.delay = 0.0
    logs = "".join(open(tmp_path / "logs" / f"worker_{r}.log").read() for r in (0, 1))
    assert logs.count("loaded") == 2 and Files.requests == {"/1e100/vovnet19-72.03-top1.pt": 1}


@pytest.mark.slow
def test_no_pretrained_no_network(tmp_path, image_folder):
    """A run that never sets pretrained opens no connection: train.py with every socket connection refused."""
    code = ("import socket, sys, runpy\n"
            "def refuse(*args, **kwargs):\n    raise OSError('network used')\n"
            "socket.socket.connect = refuse\nsocket.create_connection = refuse\n"
            "sys.argv = ['train.py'] + sys.argv[1:]\nrunpy.run_path('train.py', run_name='__main__')\n")
    out = run_cli(["-c", code, "--data_dir", image_folder, "--model", "ese_vovnet19b_slim_dw", "--num_classes", "4",
                   "--image_resize", "32", "--batch_size", "16", "--epoch_size", "1", "--num_parallel_workers", "1",
                   "--val_while_train", "false", "--ckpt_save_dir", tmp_path / "run"]).stdout
    assert "training done" in out
