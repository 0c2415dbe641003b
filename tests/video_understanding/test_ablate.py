from common.testing import TestCase
from video_understanding.ablate import VARIANTS, fusion_verdict


def rows(**accuracies):
    return [{"variant": name, "accuracy": value} for name, value in accuracies.items()]


class FusionVerdictTest(TestCase):
    def test_best_fusion_against_each_single_modality(self):
        verdict = fusion_verdict(
            rows(late=0.52, early_temporal=0.96, video_only=0.5, audio_only=0.49)
        )
        self.assertEqual(
            verdict,
            "best fusion early_temporal 96.0% beats each single modality "
            "(video only 50.0%, audio only 49.0%)",
        )
        # Beating one modality is not enough.
        verdict = fusion_verdict(rows(late=0.7, video_only=0.5, audio_only=0.7))
        self.assertIn("late 70.0% does NOT beat", verdict)
        self.assertIn("not all variants", fusion_verdict(rows(late=0.7)))

    def test_variants_name_each_run_once(self):
        names = [name for name, *_ in VARIANTS]
        self.assertEqual(len(names), len(set(names)))
        self.assertIn("cross_attention_aux", names)
        self.assertEqual(names[-2:], ["video_only", "audio_only"])
