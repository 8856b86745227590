"""The web demo (iter_mm.apis.web_demo, started by tools/web_demo.py) in a real browser, and its progress callback.

The browser test serves the page of a tiny random ITER model on a free local port and drives headless Chromium
through Selenium with the system's chromedriver (``bash tools/setup_browser.sh`` installs both). The screenshot it
takes is kept in ``$ITER_MM_TEST_ARTIFACTS`` when set, else in pytest's temporary folder.
"""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TINY_CFG = ROOT / 'configs' / 'iter' / 'iter_x4_tiny.py'
CHROMIUM = next((shutil.which(n) for n in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(n)), None)
DRIVER = shutil.which('chromedriver')
ALPHA_STEPS_LEFT = 30  # arrow-key presses on the alpha slider (step 0.01): 0.70 -> 0.40
WAIT = 90  # seconds for any one thing to appear in the page


def _tiny_net():
    from iter_mm.utils.config import inference_model_cfg, load_config
    from mmagic.registry import MODELS

    torch.manual_seed(0)
    return MODELS.build(inference_model_cfg(load_config(str(TINY_CFG)).model))


def _photo(path: Path) -> None:
    """A small synthetic photo (smooth shading, edges, noise), stored sideways with EXIF orientation 6."""
    y, x = np.mgrid[0:20, 0:28].astype(np.float32)
    rgb = np.stack([x / 27, y / 19, 0.5 + 0.4 * np.sin(x / 3) * np.cos(y / 4)], axis=2)
    rgb[6:14, 9:19] = (0.9, 0.2, 0.1)
    rgb += np.random.default_rng(0).normal(0, 0.03, rgb.shape)
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(path, exif=exif.tobytes())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_progress_counts_every_step_of_every_tile():
    """restore_image's progress: (done, total) after each step of each network call, total known from the start;
    the output is the same with and without the callback."""
    from iter_mm.models.inference import restore_image

    net = _tiny_net().generator.eval()
    lq = torch.rand(1, 3, 16, 32, generator=torch.Generator().manual_seed(1))
    calls = []
    opts = dict(steps=3, tile=16, tile_overlap=8, max_pixels=None, seed=5)
    out = restore_image(net, lq, progress=lambda d, t: calls.append((d, t)), **opts)
    assert torch.equal(out, restore_image(net, lq, **opts))
    total = calls[-1][1]
    assert total % 3 == 0 and total // 3 > 1  # several tiles, 3 steps each
    assert calls == [(d, total) for d in range(1, total + 1)]
    whole = []
    restore_image(net, lq, progress=lambda d, t: whole.append((d, t)), steps=3, seed=5)
    assert whole == [(1, 3), (2, 3), (3, 3)]


def test_upload_limits_and_offline_page(tmp_path):
    """Uploads over the size limit and corrupt files are refused with the file's own name; the page loses its
    links to other hosts."""
    import asyncio

    from iter_mm.apis.web_demo import OfflinePage
    from iter_mm.apis.web_restore import WebSettings, read_upload
    from iter_mm.errors import InvalidInputError

    _photo(tmp_path / 'p.png')
    with pytest.raises(InvalidInputError, match=r'^photo\.png: 28x20 pixels is larger than this demo accepts'):
        read_upload(str(tmp_path / 'p.png'), 'photo.png', WebSettings(max_input_pixels=100))
    assert read_upload(str(tmp_path / 'p.png'), 'photo.png', WebSettings()).frames[0].shape == (28, 20, 3)
    (tmp_path / 'bad.png').write_bytes(b'\x89PNG not really')
    with pytest.raises(InvalidInputError, match=r'^mine\.png: not a readable image'):
        read_upload(str(tmp_path / 'bad.png'), 'mine.png', WebSettings())

    page = (
        b'<head><link href="https://fonts.example/css" rel="stylesheet"><link rel="preconnect" '
        b'href="//cdn.example"><script src="https://cdn.example/x.js"></script><script src="./assets/a.js">'
        b'</script><link href="./assets/b.css" rel="stylesheet"></head>'
    )

    async def app(scope, receive, send):
        await send(
            {
                'type': 'http.response.start',
                'status': 200,
                'headers': [(b'content-type', b'text/html'), (b'content-length', str(len(page)).encode())],
            }
        )
        await send({'type': 'http.response.body', 'body': page})

    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(OfflinePage(app)({'type': 'http', 'path': '/'}, None, send))
    body = sent[1]['body']
    assert body == b'<head><script src="./assets/a.js"></script><link href="./assets/b.css" rel="stylesheet"></head>'
    assert sent[0]['headers'] == [(b'content-type', b'text/html'), (b'content-length', str(len(body)).encode())]


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    if importlib.util.find_spec('gradio') is None:  # not imported here: iter_mm imports it offline
        pytest.skip('gradio is missing (it is in requirements/pinned.txt)')
    from iter_mm.apis.model_loader import init_model
    from iter_mm.apis.web_demo import build_demo, serve

    tmp = tmp_path_factory.mktemp('web')
    ckpt = tmp / 'tiny.pth'
    torch.save({'state_dict': _tiny_net().state_dict()}, ckpt)
    model = init_model(str(TINY_CFG), str(ckpt))
    server = serve(build_demo(model, {}, work_dir=str(tmp / 'work')), '127.0.0.1', _free_port())
    yield dict(tmp=tmp, ckpt=ckpt, model=model, url=server.url)
    server.close()


@pytest.fixture(scope='module')
def browser(served):
    if not (CHROMIUM and DRIVER):
        pytest.skip('needs chromium and chromedriver on PATH (bash tools/setup_browser.sh installs them)')
    webdriver = pytest.importorskip('selenium.webdriver', reason='selenium is in requirements/pinned.txt')
    from selenium.webdriver.chrome.service import Service

    downloads = served['tmp'] / 'downloads'
    downloads.mkdir()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        '--headless=new',
        '--no-sandbox',
        '--disable-dev-shm-usage',
        '--disable-gpu',
        '--window-size=1400,1700',
        '--no-first-run',
        '--disable-background-networking',
    ):
        opts.add_argument(arg)
    opts.set_capability('goog:loggingPrefs', {'performance': 'ALL', 'browser': 'ALL'})
    opts.add_experimental_option(
        'prefs', {'download.default_directory': str(downloads), 'download.prompt_for_download': False}
    )
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)  # the system's driver: nothing downloaded
    driver.execute_cdp_cmd('Page.setDownloadBehavior', {'behavior': 'allow', 'downloadPath': str(downloads)})
    yield driver, downloads
    driver.quit()


def test_web_demo_in_browser(served, browser, tmp_path):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from iter_mm.utils.image_io import read_picture

    driver, downloads = browser
    tmp = served['tmp']
    photo, corrupt = tmp / 'photo.png', tmp / 'corrupt.png'
    _photo(photo)
    corrupt.write_bytes(b'\x89PNG not really')
    # what tools/infer.py writes for the same photo and options, computed while the browser works
    infer_out = tmp / 'infer_out'
    infer = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / 'tools' / 'infer.py'),
            str(photo),
            '-c',
            str(TINY_CFG),
            '-w',
            str(served['ckpt']),
            '-o',
            str(infer_out),
            '--device',
            'cpu',
            '--alpha',
            '0.4',
        ],
        env={**os.environ, 'OMP_NUM_THREADS': '1'},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    status = lambda: driver.find_element(By.ID, 'status').text  # noqa: E731

    class wait:  # WebDriverWait that says what the page showed when it times out
        @staticmethod
        def until(condition):
            try:
                return WebDriverWait(driver, WAIT).until(condition)
            except TimeoutException:
                raise AssertionError(f'page status: {status()!r}; console: {driver.get_log("browser")}') from None

    def upload(path: Path) -> None:
        clear = driver.find_elements(By.CSS_SELECTOR, '#upload button[aria-label=Clear]')
        if clear:
            clear[0].click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#upload input[type=file]'))
        driver.find_element(By.CSS_SELECTOR, '#upload input[type=file]').send_keys(str(path))

    def run() -> str:
        driver.find_element(By.ID, 'run').click()
        wait.until(lambda d: 'Done in' in status() or 'error' in status())
        return status()

    def natural_size(selector: str):
        img = driver.find_element(By.CSS_SELECTOR, selector)
        return tuple(driver.execute_script('return [arguments[0].naturalWidth, arguments[0].naturalHeight]', img))

    driver.get(served['url'])
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#upload input[type=file]'))
    upload(photo)
    wait.until(lambda d: 'Press Run' in status())
    driver.find_element(By.CSS_SELECTOR, '#alpha input[type=range]').send_keys(*[Keys.ARROW_LEFT] * ALPHA_STEPS_LEFT)
    assert driver.find_element(By.CSS_SELECTOR, '#alpha input[type=number]').get_attribute('value') == '0.4'
    assert 'Done in' in run(), status()

    # the result is 4x the (upright) input, and the strip shows the steps the restoration ran
    assert natural_size('#input-view img') == (20, 28)
    assert natural_size('#result-view img') == (80, 112)
    pic = read_picture(str(photo))
    lq = torch.from_numpy(pic.frames[0].transpose(2, 0, 1).copy())[None]
    ref = served['model'].restore(lq, return_intermediates=True, alpha=0.4)
    ran = ref.step_keep.shape[1] - int(ref.start_step[0])
    assert len(driver.find_elements(By.CSS_SELECTOR, '#strip figure.iter-step')) == ran
    assert f'{ran} step{"s" if ran != 1 else ""} ran' in driver.find_element(By.ID, 'strip').text
    assert natural_size('#compare img.iter-after') == (80, 112)

    # the browser's download is byte for byte the file tools/infer.py writes
    driver.find_element(By.CSS_SELECTOR, '#download a').click()
    t0 = time.monotonic()
    while not (downloads / 'photo.png').is_file() and time.monotonic() - t0 < WAIT:
        time.sleep(0.1)
    out, _ = infer.communicate(timeout=300)
    assert infer.returncode == 0, out
    assert (downloads / 'photo.png').read_bytes() == (infer_out / 'photo.png').read_bytes()

    shots = Path(os.environ.get('ITER_MM_TEST_ARTIFACTS') or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(shots / 'web_demo.png'))

    # a corrupt upload gets a message in the page; the next photo is restored as before
    upload(corrupt)
    wait.until(lambda d: 'error' in status())
    assert 'corrupt.png: not a readable image' in status()
    upload(photo)
    wait.until(lambda d: 'Press Run' in status())
    assert 'Done in' in run(), status()
    assert natural_size('#result-view img') == (80, 112)

    # everything the page loaded came from the demo's own server (no fonts, scripts or analytics elsewhere)
    urls = set()
    for entry in driver.get_log('performance'):
        msg = json.loads(entry['message'])['message']
        if msg['method'] == 'Network.requestWillBeSent':
            urls.add(msg['params']['request']['url'])
        elif msg['method'] == 'Network.webSocketCreated':
            urls.add(msg['params']['url'])
    host = served['url'].split('//', 1)[1]
    foreign = sorted(
        u
        for u in urls
        if u.split('//', 1)[-1].split('/', 1)[0] != host.rstrip('/') and not u.startswith(('data:', 'blob:'))
    )
    assert not foreign, foreign
    assert any(u.startswith('ws://') for u in urls)  # the queue's websocket was seen


def test_command_line_refusals_are_one_line(tmp_path):
    """The tool's refusals before any server starts: 'error: ...' naming the file, exit status 1, no traceback."""
    from tool_runner import error_line, run_tool

    missing = tmp_path / 'missing.pth'
    done = run_tool('web_demo', 'configs/iter/iter_x4_tiny.py', missing, timeout=300)
    assert done.returncode == 1 and 'Traceback' not in done.stderr
    assert 'checkpoint file not found' in error_line(done) and str(missing) in error_line(done)
