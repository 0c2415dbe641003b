"""Counting and reporting the records a loader skips."""

import collections


class SkipReport:
    """Collects skipped records by reason, with the first few examples of each.

    Example:

    >>> report = SkipReport("captions.txt")
    >>> report.skip("missing image", "a.jpg")
    >>> report.kept = 10
    >>> print(report.summary())
    captions.txt: kept 10, skipped 1 (missing image: 1, e.g. a.jpg)
    """

    def __init__(self, source, max_examples=3):
        self.source = str(source)
        self.max_examples = max_examples
        self.counts = collections.Counter()
        self.examples = collections.defaultdict(list)
        self.entries = []  # every (example, reason), in order
        self.kept = 0

    def skip(self, reason, example):
        self.counts[reason] += 1
        self.entries.append((str(example), reason))
        if len(self.examples[reason]) < self.max_examples:
            self.examples[reason].append(str(example))

    @property
    def skipped(self):
        return sum(self.counts.values())

    def as_dict(self):
        return {
            "source": self.source,
            "kept": self.kept,
            "skipped": self.skipped,
            "reasons": {
                reason: {"count": count, "examples": self.examples[reason]}
                for reason, count in self.counts.most_common()
            },
        }

    def summary(self):
        if not self.skipped:
            return f"{self.source}: kept {self.kept}, skipped 0"
        parts = [
            f"{reason}: {count}, e.g. {', '.join(self.examples[reason])}"
            for reason, count in self.counts.most_common()
        ]
        return (
            f"{self.source}: kept {self.kept}, skipped {self.skipped} "
            f"({'; '.join(parts)})"
        )
