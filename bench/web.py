"""The web page: time from a text query to its results shown, on a demo-like
index (the demo preset's model, untrained: timing does not depend on the
weights; generated demo images as the gallery).

Per query, over HTTP as the page does it: `/api/search` and then every
result's thumbnail (`/image/N`), one after the other; and, where headless
Chromium and selenium are installed, in the browser: type the query, submit,
until every thumbnail is decoded and shown. Reports medians over the queries
(`--queries`, default 20) after one warm-up query.

    python bench/web.py [--quick]
"""

import json
import os
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import bench_parser, result, write_report  # noqa: E402
from common.web import make_app  # noqa: E402
from common.web.backends import SearchBackend  # noqa: E402
from common.web.server import serving  # noqa: E402
from retrieval.config import get_config  # noqa: E402
from retrieval.demo_data import generate_demo_data  # noqa: E402
from retrieval.export import make_export_archive  # noqa: E402
from retrieval.index import build_index  # noqa: E402
from retrieval.model import build_model  # noqa: E402

QUERIES = [
    f"a {size} {colour} {shape} at the {place}"
    for size in ("small", "large")
    for colour in ("red", "blue", "green")
    for shape in ("circle", "square")
    for place in ("top left", "bottom right")
]


def http_time(base, query, k):
    start = time.perf_counter()
    path = "/api/search?" + urllib.parse.urlencode({"q": query, "k": k})
    with urllib.request.urlopen(base + path, timeout=120) as reply:
        answer = json.loads(reply.read())
    for item in answer["results"]:
        with urllib.request.urlopen(base + item["image"], timeout=120) as reply:
            reply.read()
    return time.perf_counter() - start


def browser_times(base, queries, k):
    """Seconds per query in headless Chromium, or None without one."""
    import shutil

    try:
        from selenium import webdriver
    except ImportError:
        return None
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver_path:
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options, webdriver.ChromeService(driver_path))
    # Timed inside the page, from the click to the frame in which every
    # thumbnail is decoded (WebDriver's own round trips left out).
    timed = """
const [query, k, done] = arguments;
document.getElementById("query").value = query;
document.getElementById("k").value = k;
const start = performance.now();
document.getElementById("search-button").click();
const check = () => {
  const images = [...document.querySelectorAll("#results img")];
  if (document.getElementById("results").dataset.ready === "true"
      && images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0)) {
    done(performance.now() - start);
  } else {
    requestAnimationFrame(check);
  }
};
requestAnimationFrame(check);
"""
    times = []
    try:
        driver.set_script_timeout(60)
        for query in queries:
            driver.get(base + "/")
            times.append(driver.execute_async_script(timed, query, k) / 1000)
    finally:
        driver.quit()
    return times


def main(argv=None):
    parser = bench_parser(__doc__, "web", quick_help="100 images, 8 queries")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("-k", type=int, default=8)
    args = parser.parse_args(argv)
    images = 100 if args.quick else 300
    queries = (QUERIES * 2)[: 8 if args.quick else args.queries]
    config = get_config("demo", ["model.weights=none"])
    settings = {
        "preset": "demo",
        "gallery": images,
        "queries": len(queries),
        "k": args.k,
    }
    with tempfile.TemporaryDirectory() as folder:
        data = os.path.dirname(
            generate_demo_data(os.path.join(folder, "data"), images, 0, 0)
        )
        model = build_model(config, vocabulary=sorted(set(" ".join(QUERIES).split())))
        model_dir = os.path.join(folder, "model")
        make_export_archive(model, config.data.image_size).write_out(
            model_dir, verbose=False
        )
        index = os.path.join(folder, "index")
        build_index(model_dir, os.path.join(data, "Images"), index, verbose=False)
        with serving(make_app(SearchBackend(index))) as base:
            http_time(base, queries[0], args.k)  # warm-up: traces the signatures
            http = [http_time(base, q, args.k) for q in queries]
            browser = browser_times(base, queries[:1] + queries, args.k)
    results = [result("web_query_to_thumbnails_http_ms", 1000 * np.median(http), "ms")]
    if browser is not None:
        browser = browser[1:]  # the first loads the browser's caches
        results.append(
            result(
                "web_query_to_results_shown_chromium_ms",
                1000 * np.median(browser),
                "ms",
            )
        )
    return write_report(args.output, results, settings)


if __name__ == "__main__":
    main()
