"""The web page driven in a real headless Chromium: what a user types and
uploads, and what the page shows, against the exports' own answers.

Needs Debian's `chromium` and `chromium-driver` (`apt-get install -y chromium
chromium-driver`) and `selenium`; without them these tests skip, except
under CI (`CI` set), where they fail.
"""

import os
import shutil
import unittest

from common.web import make_app
from tests.common.web.helpers import ExportedBackendsTest, serving

INSTALL = "apt-get install -y chromium chromium-driver; pip install selenium"


def browser_or_skip(test):
    """A headless Chromium WebDriver, or a skip (a failure under CI)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
    except ImportError:
        webdriver = None
    if webdriver is None or not binary or not driver:
        message = f"No headless Chromium with selenium here ({INSTALL})."
        if os.environ.get("CI"):
            test.fail(message)
        raise unittest.SkipTest(message)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-dev-shm-usage", "--window-size=1200,1000"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(driver))


class BrowserTest(ExportedBackendsTest):
    def setUp(self):
        super().setUp()
        self.driver = browser_or_skip(self)
        self.addCleanup(self.driver.quit)
        self.shots = os.environ.get("MMSUITE_SCREENSHOTS") or self.get_temp_dir()

    def screenshot(self, name):
        os.makedirs(self.shots, exist_ok=True)
        self.driver.save_screenshot(os.path.join(self.shots, name + ".png"))

    def wait_until_ready(self, element_id):
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, 120).until(
            lambda d: (
                d.find_element("id", element_id).get_attribute("data-ready") == "true"
                or d.find_element(
                    "id",
                    element_id.replace("results", "search-error").replace(
                        "classes", "classify-error"
                    ),
                ).text
            )  # fmt: skip
        )

    def wait_for_thumbnails(self):
        from selenium.webdriver.support.ui import WebDriverWait

        script = (
            "const images = [...document.querySelectorAll('#results img')];"
            "return images.length > 0 && images.every("
            "i => i.complete && i.naturalWidth > 0);"
        )
        WebDriverWait(self.driver, 60).until(lambda d: d.execute_script(script))

    def cards(self):
        return self.driver.find_elements("css selector", "#results .card")

    def test_text_and_image_search_show_the_index_answer(self):
        from retrieval.search import search

        query = "a large red circle at the top left"
        with serving(make_app(self.search, self.classify)) as base:
            d = self.driver
            d.get(base + "/")
            box = d.find_element("id", "query")
            box.send_keys(query)
            k = d.find_element("id", "k")
            k.clear()
            k.send_keys("6")
            d.find_element("id", "search-button").click()
            self.wait_until_ready("results")
            self.wait_for_thumbnails()  # each one served, decoded and shown
            self.screenshot("search_text")
            expected, _ = search(self.e.index, query, k=6)
            cards = self.cards()
            self.assertEqual([c.get_attribute("data-id") for c in cards],
                             [i for i, _ in expected])  # fmt: skip
            self.assertIn("version 1", d.find_element("id", "search-version").text)

            image = os.path.join(self.e.images, self.search.index.ids[2])
            d.find_element("id", "image-file").send_keys(image)
            d.find_element("id", "image-button").click()
            self.wait_until_ready("results")
            self.wait_for_thumbnails()
            self.screenshot("search_image")
            expected, _ = search(self.e.index, image=image, k=6)
            self.assertEqual([c.get_attribute("data-id") for c in self.cards()],
                             [i for i, _ in expected])  # fmt: skip

    def test_classify_an_uploaded_clip(self):
        from video_understanding.predict import predict

        clip = self.clips[0]
        with serving(make_app(self.search, self.classify)) as base:
            d = self.driver
            d.get(base + "/")
            d.find_element("id", "clip-file").send_keys(clip)
            d.find_element("id", "classify-button").click()
            self.wait_until_ready("classes")
            self.screenshot("classify")
            rows = d.find_elements("css selector", "#classes .row")
            expected = predict([clip], self.e.video, k=5)[0]["top"]
            self.assertEqual([r.get_attribute("data-label") for r in rows],
                             [t["label"] for t in expected])  # fmt: skip
            frames = d.find_elements("css selector", "#frames img")
            self.assertEqual(
                len(frames), self.classify.classifier.decoding["num_frames"]
            )

    def test_refusals_show_as_text_on_the_page(self):
        with serving(make_app(self.search, self.classify, 2048)) as base:
            d = self.driver
            d.get(base + "/image/..%2F..%2F..%2Fetc%2Fpasswd")
            self.assertIn("Not Found", d.page_source)
            self.assertNotIn("root:", d.page_source)
            d.get(base + "/")
            image = os.path.join(self.e.images, self.search.index.ids[0])
            d.find_element("id", "image-file").send_keys(image)
            d.find_element("id", "image-button").click()
            self.wait_until_ready("results")
            error = d.find_element("id", "search-error").text
            self.screenshot("too_large")
            self.assertIn("larger than", error)
            # a file name with markup comes back in the message as text
            folder = self.get_temp_dir()
            odd = os.path.join(folder, "<b>bold <img src=x onerror=alert(1)>.txt")
            with open(odd, "w") as f:
                f.write("not a clip")
            d.find_element("id", "clip-file").send_keys(odd)
            d.find_element("id", "classify-button").click()
            self.wait_until_ready("classes")
            message = d.find_element("id", "classify-error")
            self.screenshot("bad_clip")
            self.assertIn("<b>bold <img src=x onerror=alert(1)>.txt", message.text)
            self.assertEqual(message.find_elements("css selector", "b, img"), [])
