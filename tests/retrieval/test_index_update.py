"""`retrieval index --method ivf` over a real export, and `index --update`:
adds only the new images (counted), drops removed ids for good, and refuses
a model other than the index's."""

import os
import shutil
import subprocess
import sys

import numpy as np
import tensorflow as tf

import retrieval.index_update as index_update
from common.export import resolve_version_dir
from common.serving.warmup import read_warmup_requests
from common.testing import TestCase
from retrieval.__main__ import main
from retrieval.index import export_index, search_module
from retrieval.search import LoadedIndex, search
from tests.exported_models import exported


def search_all(path, query, k, nprobe=None):
    loaded = tf.saved_model.load(path)
    if nprobe is None:
        out = loaded.signatures["search_by_text"](
            text=tf.constant([query]), k=tf.constant([k])
        )
    else:
        out = loaded.signatures["search_by_text_nprobe"](
            text=tf.constant([query]), k=tf.constant([k]), nprobe=tf.constant([nprobe])
        )
    ids = [i.decode() for i in out["ids"].numpy()[0]]
    return ids, out["scores"].numpy()[0]


class Recorded:
    """A loaded SavedModel whose signatures record the names asked for."""

    def __init__(self, loaded):
        self.loaded, self.used = loaded, []
        recorded = self

        class Signatures:
            def __getitem__(self, name):
                recorded.used.append(name)
                return loaded.signatures[name]

        self.signatures = Signatures()


class IvfIndexCliTest(TestCase):
    def test_ivf_with_every_cluster_probed_answers_as_the_exact_index(self):
        e = exported()
        out = os.path.join(self.get_temp_dir(), "ivf")
        args = ["index", "--model", e.retrieval, "--images", e.images]
        args += ["--output", out, "--method", "ivf", "--nlist", "4"]
        self.assertEqual(main(args), 0)
        loaded = tf.saved_model.load(os.path.join(out, "1"))
        info = loaded.gallery_info()
        self.assertEqual(info["method"].numpy(), b"ivf")
        self.assertEqual(int(info["nlist"]), 4)
        size = int(info["size"])
        query = "a small red circle at the top left"
        expected, scores = search_all(os.path.join(e.index, "1"), query, size)
        found, found_scores = search_all(os.path.join(out, "1"), query, size, 4)
        self.assertEqual(found, expected)
        np.testing.assert_allclose(found_scores, scores, atol=1e-5)
        # `retrieval search --nprobe` asks the nprobe signature
        results, _ = search(os.path.join(out, "1"), query, k=size, nprobe=4)
        self.assertEqual([i for i, _ in results], expected)
        loaded = LoadedIndex(os.path.join(out, "1"))
        self.assertEqual(loaded.methods, ["ivf"])
        for nprobe, name in ((1, "search_by_text_nprobe"), (None, "search_by_text")):
            recorded = Recorded(loaded.loaded[0])
            loaded.loaded[0] = recorded
            self.assertEqual(len(loaded.search(query, k=3, nprobe=nprobe)), 3)
            loaded.loaded[0] = recorded.loaded
            self.assertEqual(recorded.used, [name])
        args = ["search", "--index", os.path.join(out, "1"), query]
        self.assertEqual(main(args + ["--nprobe", "0"]), 2)
        self.assertEqual(main(args + ["--nprobe", "2", "--rerank-depth", "3"]), 2)

        # warmup requests cover the nprobe signatures, with the default nprobe
        version = os.path.join(out, "1")
        warmed = {name: inputs for name, inputs in read_warmup_requests(version)}
        self.assertIn("search_by_text_nprobe", warmed)
        self.assertIn("search_by_image_nprobe", warmed)
        self.assertEqual(set(warmed["search_by_text_nprobe"]["nprobe"].tolist()), {4})
        # and the stock command-line runner answers from it
        cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
        run = subprocess.run(
            [cli, "run", "--dir", version, "--tag_set", "serve", "--signature_def",
             "search_by_text_nprobe", "--input_exprs",
             f"text=[{query!r}];k=[3];nprobe=[4]"],
            capture_output=True, text=True, check=False,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        )  # fmt: skip
        self.assertEqual(run.returncode, 0, run.stderr[-2000:])
        self.assertIn(expected[0], run.stdout)

    def test_int8_codes_without_ivf_are_refused(self):
        e = exported()
        args = ["index", "--model", e.retrieval, "--images", e.images, "--output"]
        args += [os.path.join(self.get_temp_dir(), "x"), "--method", "exact"]
        self.assertEqual(main(args + ["--codes", "int8"]), 2)


class IndexUpdateTest(TestCase):
    def setUp(self):
        super().setUp()
        e = self.e = exported()
        self.root = os.path.join(self.get_temp_dir(), "photos")
        names = sorted(os.listdir(e.images))
        shutil.copytree(e.images, self.root)
        self.later = names[-5:]
        for name in self.later:  # images that arrive after the first index
            os.remove(os.path.join(self.root, name))
        self.index = os.path.join(self.get_temp_dir(), "index")
        self.base = names[:-5]

    def build(self, *extra):
        args = ["index", "--model", self.e.retrieval, "--images", self.root]
        self.assertEqual(main(args + ["--output", self.index, *extra]), 0)

    def arrive(self):
        new = os.path.join(self.root, "2026-12-02")
        os.makedirs(new)
        for name in self.later:
            shutil.copy(os.path.join(self.e.images, name), new)
        return new

    def test_update_adds_removes_and_embeds_only_the_new_images(self):
        ivf = ["--method", "ivf", "--nlist", "3", "--codes", "int8", "--nprobe", "2"]
        ivf += ["--rescore"]
        for method in (ivf, []):
            with self.subTest(method=method):
                shutil.rmtree(self.index, ignore_errors=True)
                shutil.rmtree(os.path.join(self.root, "2026-12-02"), True)
                self.check_update(method)

    def check_update(self, method):
        self.build(*method)
        new = self.arrive()
        removed = self.base[:3]
        ids_file = os.path.join(self.get_temp_dir(), "remove.txt")
        with open(ids_file, "w") as f:
            f.write("\n".join(removed) + "\n\n")
        embedded = []
        original = index_update.embed_gallery

        def counting(encoder, batches, spool, *args, **kwargs):
            def counted():
                for ids, blobs in batches:
                    embedded.extend(ids)
                    yield ids, blobs

            return original(encoder, counted(), spool, *args, **kwargs)

        index_update.embed_gallery = counting
        try:
            args = ["index", "--model", self.e.retrieval, "--update", self.index]
            self.assertEqual(main(args + ["--add", new, "--remove", ids_file]), 0)
        finally:
            index_update.embed_gallery = original
        self.assertEqual(sorted(embedded), sorted(self.later))
        loaded = tf.saved_model.load(os.path.join(self.index, "2"))
        info = loaded.gallery_info()
        size = len(self.base) - 3 + 5
        self.assertEqual(int(info["size"]), size)
        if "--nprobe" in method:  # the default nprobe and re-scoring are kept
            self.assertEqual(int(info["nprobe"]), 2)
            self.assertEqual(int(info["rescore"]), 4)
        ids, _ = search_all(os.path.join(self.index, "2"), "a blue square", size)
        self.assertEqual(len(set(ids)), size)
        for name in removed:
            self.assertNotIn(name, ids)
        for name in self.later:
            self.assertIn(os.path.join("2026-12-02", name), ids)
        # the first version is untouched
        first = tf.saved_model.load(os.path.join(self.index, "1"))
        first = first.gallery_info()
        self.assertEqual(int(first["size"]), len(self.base))

    def test_update_with_another_model_is_refused_by_name(self):
        e = self.e
        encoder = tf.saved_model.load(resolve_version_dir(e.retrieval))
        other = resolve_version_dir(e.video)  # any other SavedModel
        vectors = np.eye(4, 16, dtype=np.float32)
        module = search_module(
            encoder, vectors, ["a", "b", "c", "d"], self.root, model_dir=other
        )
        export_index(module, self.index)
        new = self.arrive()
        with self.assertRaisesRegex(ValueError, "video_understanding"):
            index_update.update_index(e.retrieval, self.index, add=new, verbose=False)
        args = ["index", "--model", e.retrieval, "--update", self.index, "--add", new]
        self.assertEqual(main(args), 2)
        self.assertEqual(os.listdir(self.index), ["1"])

    def test_sharded_index_updates_every_shard(self):
        self.build("--max-shard-images", str(len(self.base) // 2 + 1))
        new = self.arrive()
        args = ["index", "--model", self.e.retrieval, "--update", self.index]
        self.assertEqual(main(args + ["--add", new]), 0)
        shards = sorted(os.listdir(self.index))
        self.assertEqual(len(shards), 2)
        sizes = []
        for shard in shards:
            self.assertEqual(
                sorted(os.listdir(os.path.join(self.index, shard))), ["1", "2"]
            )
            loaded = tf.saved_model.load(os.path.join(self.index, shard, "2"))
            sizes.append(int(loaded.gallery_info()["size"]))
        self.assertEqual(sum(sizes), len(self.base) + 5)
        self.assertLessEqual(max(sizes) - min(sizes), 1)
