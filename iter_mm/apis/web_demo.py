"""ITER's web demo: a Gradio page over one loaded model (``tools/web_demo.py`` starts it; docs/web_demo.md).

Upload a photo, set alpha / steps / seed / colour correction / tile size (defaults: the model's ``test_cfg``, i.e.
:class:`~iter_mm.models.options.RestoreOptions` under the config and the command line), press Run: a progress bar
follows every refinement step of every tile; the result shows beside the input, in a before/after slider at full
resolution, with the refinement strip (:mod:`.refinement_view`) and the result file to download, written as
``tools/infer.py`` writes it (:mod:`.web_restore`).

Safe by default: :func:`serve` listens on 127.0.0.1; one restoration runs at a time (Gradio's queue, concurrency
1, at most :data:`QUEUE_SIZE` waiting, each shown its place); uploads above ``WebSettings.max_input_pixels`` are
refused; unreadable uploads get a message in the page. Nothing comes from the internet: analytics are off, the
page's links to web fonts and scripts on other hosts are removed (:class:`OfflinePage`), and Gradio 3.18's
import-time request for updated UI messages is answered offline (:func:`import_gradio`).

Gradio is imported when a demo is built, not with :mod:`iter_mm.apis`.
"""

from __future__ import annotations

import html
import os
import os.path as osp
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import typing
import warnings
from typing import Optional, Sequence

import cv2
import numpy as np
import torch

from ..errors import InvalidOptionError
from .refinement_view import compare_html, step_count, strip_html
from .web_restore import STRIP_MAX_PIXELS, WebSettings, display_array, read_upload, restore_upload

__all__ = ['QUEUE_SIZE', 'KEPT_JOBS', 'import_gradio', 'build_demo', 'serve', 'WebServer', 'OfflinePage']

#: restorations that may wait in the queue behind the running one (more get Gradio's "queue full" message)
QUEUE_SIZE = 8
#: finished jobs whose files stay on disk (older ones are deleted)
KEPT_JOBS = 16

CSS = """
.iter-strip .iter-figures {display: flex; flex-wrap: wrap; gap: 12px;}
.iter-strip figure {margin: 0; width: min-content;}
.iter-strip .iter-pics {display: flex; gap: 4px;}
.iter-strip img {flex: none; outline: 1px solid #888; image-rendering: pixelated;}
.iter-strip figcaption, .iter-note, .iter-summary {font-size: 0.85em;}
.iter-compare .iter-split {width: 100%;}
.iter-compare .iter-view {overflow: auto; max-height: 75vh; width: fit-content; max-width: 100%;
  border: 1px solid #888;}
.iter-compare .iter-layers {position: relative;}
.iter-compare .iter-layers img {position: absolute; top: 0; left: 0; max-width: none;}
.iter-compare .iter-before {image-rendering: pixelated;}
.iter-compare .iter-line {position: absolute; top: 0; bottom: 0; width: 2px; margin-left: -1px; background: #f0f;}
"""

_EXTERNAL = re.compile(
    rb'<link\b[^>]*\bhref="(?:https?:)?//[^"]*"[^>]*>|'
    rb'<script\b[^>]*\bsrc="(?:https?:)?//[^"]*"[^>]*>\s*</script>',
    re.I,
)


def _pydantic1_optionals(module) -> None:
    """Gradio 3.18 was written for pydantic 1, where an ``Optional`` field without a default defaults to None;
    pydantic 2 makes it required, and the page's requests (which leave out e.g. ``event_id``) would be refused.
    Give those fields of the module's models their pydantic-1 default."""
    from pydantic import BaseModel

    for model in vars(module).values():
        if not (isinstance(model, type) and issubclass(model, BaseModel) and model is not BaseModel):
            continue
        fields = [
            f for f in model.model_fields.values() if f.is_required() and type(None) in typing.get_args(f.annotation)
        ]
        for f in fields:
            f.default = None
        if fields:
            model.model_rebuild(force=True)


def import_gradio():
    """``import gradio`` (3.18) with analytics off, no network and pydantic 2.

    Gradio starts a thread at import that asks its server for updated UI messages (ignoring failures);
    ``requests.get`` fails at once while that import runs, and the thread is joined before it is restored. Its
    deprecation warnings are silenced, and its data models get pydantic 1's defaults (:func:`_pydantic1_optionals`).

    Returns:
        module: the ``gradio`` module.
    """
    os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'
    if 'gradio' not in sys.modules:
        import requests

        real = requests.get

        def offline(*args, **kwargs):
            raise requests.ConnectionError('the iter-mm web demo makes no internet requests')

        requests.get = offline
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                import gradio.strings
            target = getattr(gradio.strings, 'get_updated_messaging', None)
            for thread in threading.enumerate():
                if target is not None and getattr(thread, '_target', None) is target:
                    thread.join()
        finally:
            requests.get = real
    import gradio
    import gradio.data_classes

    _pydantic1_optionals(gradio.data_classes)
    return gradio


class OfflinePage:
    """ASGI middleware: the page's HTML without ``<link>`` / ``<script>`` elements that load from other hosts.

    Those are web fonts and an iframe helper; without them the page works, and fetches nothing, without internet.

    Args:
        app (ASGI app): the wrapped application.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope['type'] != 'http' or scope.get('path', '/') != '/':
            await self.app(scope, receive, send)
            return
        start, body = {}, []

        async def rewrite(message) -> None:
            if message['type'] == 'http.response.start':
                start.update(message)
                return
            body.append(message.get('body', b''))
            if message.get('more_body'):
                return
            page = b''.join(body)
            headers = [(k, v) for k, v in start.get('headers', []) if k.lower() != b'content-length']
            if any(k.lower() == b'content-type' and v.startswith(b'text/html') for k, v in headers):
                page = _EXTERNAL.sub(b'', page)
            await send({**start, 'headers': headers + [(b'content-length', str(len(page)).encode())]})
            await send({'type': 'http.response.body', 'body': page})

        await self.app(scope, receive, rewrite)


def _describe(model, device: torch.device) -> str:
    cfg = getattr(model, 'cfg', None)
    name = osp.basename(getattr(cfg, 'filename', '') or '') or type(model).__name__
    return f'{name}, x{int(model.generator.scale)}, on {device}'


def _write_view(path: str, view: np.ndarray) -> str:
    """Save an 8-bit RGB(A) view as PNG (for the comparison slider)."""
    code = cv2.COLOR_RGBA2BGRA if view.shape[2] == 4 else cv2.COLOR_RGB2BGR
    cv2.imwrite(path, cv2.cvtColor(view, code))
    return path


def _prune(root: str, keep: int) -> None:
    jobs = sorted((osp.join(root, d) for d in os.listdir(root)), key=osp.getmtime)
    for old in jobs[:-keep] if keep else jobs:
        shutil.rmtree(old, ignore_errors=True)


def _error(err: BaseException) -> str:
    return f'**error:** {html.escape(str(err))}'


def build_demo(
    model, options: Optional[dict] = None, settings: Optional[WebSettings] = None, work_dir: Optional[str] = None
):
    """The demo page (a ``gr.Blocks`` with its queue set) over ``model``.

    Args:
        model (ITERModel): loaded, in eval mode, on its device (``iter_mm.apis.init_model``).
        options (dict, optional): ``RestoreOptions`` fields given by the server (command line); the page shows
            ``model.options(**options)`` as its defaults and sets alpha, steps, seed, colour correction and tile.
            Default: None.
        settings (WebSettings, optional): output format and limits. Default: ``WebSettings()``.
        work_dir (str, optional): where uploads' results are written. Default: a new temporary folder.

    Returns:
        gr.Blocks: the page, ready for :func:`serve`.

    Raises:
        InvalidOptionError: unknown or invalid ``options`` (from ``model.options``).
    """
    gr = import_gradio()
    options = dict(options or {})
    settings = settings or WebSettings()
    defaults = model.options(**options)  # raises on unknown or invalid options
    device = next(model.parameters()).device
    root = work_dir or tempfile.mkdtemp(prefix='iter-web-')  # a temporary one is removed by WebServer.close
    os.makedirs(root, exist_ok=True)
    side = int(settings.max_input_pixels**0.5)
    strip_side = int(STRIP_MAX_PIXELS**0.5)

    def clear(status: str):
        return None, None, '', '', None, status

    def on_upload(file):
        if file is None:
            return clear('Upload a photo to start.')
        name = osp.basename(getattr(file, 'orig_name', '') or file.name)
        try:
            pic = read_upload(file.name, name, settings)
        except ValueError as err:
            return clear(_error(err))
        h, w = pic.frames[0].shape[:2]
        info = pic.info
        kind = f'{"grey" if info.grey else "RGB"}{" + alpha" if info.has_alpha else ""}, {info.bit_depth}-bit'
        notes = ''.join(f'<br>{html.escape(n)}' for n in info.notes)
        view = display_array(
            pic.frames[0] if pic.alpha is None else np.concatenate([pic.frames[0], pic.alpha[..., None]], axis=2)
        )
        return (view, None, '', '', None, f'{html.escape(name)}: {w}x{h} px, {kind}. Press Run.{notes}')

    def on_run(file, alpha, steps, seed, colour, tile, progress=gr.Progress()):
        if file is None:
            return None, '', '', None, 'Upload a photo first.'
        name = osp.basename(getattr(file, 'orig_name', '') or file.name)
        try:
            if seed is None or steps is None or tile is None:
                raise InvalidOptionError('steps, seed and tile size need a number')
            page = dict(
                alpha=float(alpha),
                steps=int(steps),
                seed=int(seed),
                color_correction=bool(colour),
                tile=int(tile) or None,
            )
            _prune(root, KEPT_JOBS - 1)
            job = tempfile.mkdtemp(dir=root)
            progress(0.0, desc='reading the photo')
            res = restore_upload(
                model, file.name, name, job, {**options, **page}, settings, lambda done, text: progress(done, desc=text)
            )
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            return None, '', '', None, _error('out of GPU memory: set a smaller tile size and run again')
        except (ValueError, TypeError, FileNotFoundError) as err:  # unreadable file, bad option (ITERError)
            return None, '', '', None, _error(err)
        (h, w), (sh, sw) = res.lq_view.shape[:2], res.sr_view.shape[:2]
        before = _write_view(osp.join(job, 'view_input.png'), res.lq_view)
        after = _write_view(osp.join(job, 'view_result.png'), res.sr_view)
        if res.refinement is not None:
            first, total = step_count(res.refinement)
            strip = strip_html(res.refinement, page['alpha'])
            ran = f'{total - first} of {total} refinement steps ran'
        else:
            why = (
                f'the refinement strip is shown for images up to {STRIP_MAX_PIXELS} pixels (e.g. {strip_side}x'
                f'{strip_side}) restored whole; this one'
                + (f' has {h * w} pixels' if h * w > STRIP_MAX_PIXELS else ' was tiled')
            )
            strip, ran = strip_html(None, page['alpha'], why), 'tiled or large: no strip'
        notes = ''.join(f'<br>{html.escape(n)}' for n in res.notes)
        status = (
            f'Done in {res.seconds:.1f} s: {w}x{h} -> {sw}x{sh} px; {ran}. Result file: '
            f'{html.escape(osp.basename(res.path))}{notes}'
        )
        return (res.sr_view, compare_html('file=' + before, 'file=' + after, sw, sh), strip, res.path, status)

    with gr.Blocks(title='ITER super-resolution', analytics_enabled=False, css=CSS) as demo:
        gr.Markdown(
            f'# ITER: iterative token evaluation and refinement\nModel: {html.escape(_describe(model, device))}. '
            f'Upload a photo of up to {settings.max_input_pixels} pixels (e.g. {side}x{side}); the result is '
            f'{int(model.generator.scale)}x larger. One photo is restored at a time: while another one runs, '
            'yours waits in the queue and its place shows over the result.'
        )
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label='Photo (PNG, JPEG, WebP, TIFF, BMP, GIF)', elem_id='upload')
                alpha = gr.Slider(
                    0,
                    1,
                    value=float(defaults.alpha),
                    step=0.01,
                    elem_id='alpha',
                    label="alpha: phi_e's threshold; tokens with P(good) >= alpha are kept at the start",
                )
                steps = gr.Slider(
                    1,
                    max(16, int(defaults.steps)),
                    value=int(defaults.steps),
                    step=1,
                    label='refinement steps T',
                    elem_id='steps',
                )
                seed = gr.Number(value=int(defaults.seed or 0), precision=0, label='seed', elem_id='seed')
                colour = gr.Checkbox(
                    value=bool(defaults.color_correction),
                    elem_id='colour',
                    label='colour correction (match the input colours, paper Eq. 10)',
                )
                tile = gr.Number(
                    value=int(defaults.tile or 0),
                    precision=0,
                    elem_id='tile',
                    label=f'tile size in input pixels (0: tiles only above {defaults.max_pixels} pixels)',
                )
                run = gr.Button('Run', variant='primary', elem_id='run')
            with gr.Column(scale=2):
                status = gr.Markdown('Upload a photo to start.', elem_id='status')
                with gr.Row():
                    lq_view = gr.Image(label='Input', interactive=False, elem_id='input-view')
                    sr_view = gr.Image(label='Result', interactive=False, elem_id='result-view')
                download = gr.File(label='Result file', interactive=False, elem_id='download')
        gr.Markdown('### Before / after at full resolution')
        compare = gr.HTML(elem_id='compare')
        gr.Markdown('### Refinement')
        strip = gr.HTML(elem_id='strip')
        upload.change(on_upload, upload, [lq_view, sr_view, compare, strip, download, status], queue=False)
        run.click(on_run, [upload, alpha, steps, seed, colour, tile], [sr_view, compare, strip, download, status])
    demo.queue(concurrency_count=1, max_size=QUEUE_SIZE, api_open=False)
    demo.file_directories = [root]  # the comparison's pictures; nothing else is served from disk
    demo.iter_temp_dirs = [] if work_dir else [root]
    return demo


class WebServer:
    """A running demo: ``url``, ``wait()`` (until Ctrl+C) and ``close()``.

    Args:
        server (uvicorn.Server): the server running in ``thread``.
        thread (threading.Thread): the background thread.
        url (str): the page's local address.
    """

    def __init__(self, server, thread: threading.Thread, url: str, temp_dirs: Sequence[str] = ()) -> None:
        self._server, self._thread, self.url = server, thread, url
        self._temp_dirs = list(temp_dirs)  # the uploads' results and Gradio's empty folder: removed on close

    def wait(self) -> None:
        """Block until the server stops; Ctrl+C closes it."""
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            self.close()

    def close(self) -> None:
        """Ask the server to stop, wait up to 10 s for its thread, then remove the demo's temporary folders."""
        self._server.should_exit = True
        self._thread.join(10)
        for folder in self._temp_dirs:
            shutil.rmtree(folder, ignore_errors=True)
        self._temp_dirs = []


def serve(demo, host: str = '127.0.0.1', port: int = 7860, timeout: float = 60.0) -> WebServer:
    """Serve ``demo`` (from :func:`build_demo`) on ``host``:``port`` in a background thread; returns when it listens.

    Args:
        demo (gr.Blocks): the page.
        host (str): address to listen on. Default: '127.0.0.1'.
        port (int): port to listen on. Default: 7860.
        timeout (float): seconds to wait for the server to start. Default: 60.0.

    Returns:
        WebServer: the running server.

    Raises:
        InvalidOptionError: the address cannot be listened on (port in use, unknown host), or the server did not
            start within ``timeout``.
    """
    gr = import_gradio()
    import uvicorn
    from fastapi import FastAPI
    from starlette.middleware import Middleware
    from starlette.routing import Mount

    try:  # uvicorn exits the process on a bind error: say it here instead
        family = socket.AF_INET6 if ':' in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as err:
        raise InvalidOptionError(f'cannot listen on {host}:{port}: {err.strerror or err}') from None
    local = {'0.0.0.0': '127.0.0.1', '::': '[::1]'}.get(host, f'[{host}]' if ':' in host else host)
    url = f'http://{local}:{port}/'
    app = gr.mount_gradio_app(FastAPI(middleware=[Middleware(OfflinePage)]), demo, '/', gradio_api_url=url)
    temp_dirs = list(getattr(demo, 'iter_temp_dirs', []))
    for route in app.routes:  # Gradio 3.18 serves any file under its working folder: give it an empty one
        if isinstance(route, Mount):
            route.app.cwd = tempfile.mkdtemp(prefix='iter-web-cwd-')
            temp_dirs.append(route.app.cwd)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level='warning', ws='websockets-sansio'))
    thread = threading.Thread(target=server.run, name='iter-web-demo', daemon=True)
    thread.start()
    t0 = time.monotonic()
    queue = getattr(demo, '_queue', None)
    while not (server.started and getattr(queue, 'queue_client', True) is not None):
        if not thread.is_alive() or time.monotonic() - t0 > timeout:
            server.should_exit = True
            raise InvalidOptionError(f'the web server did not start on {host}:{port}')
        time.sleep(0.05)
    if queue is not None:  # the queue posts each job to the server itself: a restoration may take minutes, and
        queue.queue_client.timeout = None  # httpx >= 0.27 would end it after the client's default 5 s
    return WebServer(server, thread, url, temp_dirs)
