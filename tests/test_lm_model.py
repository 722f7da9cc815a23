"""The LM lab's pieces: tokenizer, corpus and oracle, the transformer's masks and its KV cache."""

from __future__ import annotations

import random

import pytest
import torch

from rltui.algos.lm_common import encode_prompts, encode_responses, generate, response_logprobs, rollout
from rltui.lm import corpus, oracle
from rltui.lm.model import LMConfig, ScalarModel, TinyLM, build_model, load_payload, model_bytes
from rltui.lm.tokenizer import BOS, EOS, PAD, CharTokenizer


@pytest.fixture
def tok() -> CharTokenizer:
    return CharTokenizer()


@pytest.fixture
def lm(tok) -> TinyLM:
    torch.manual_seed(0)
    return TinyLM(LMConfig(tok.vocab_size, d_model=32, n_layer=2, n_head=4, context_len=48)).eval()


def test_tokenizer_round_trip_and_specials(tok):
    ids = tok.encode("the food was great.", bos=True, eos=True)
    assert ids[0] == BOS and ids[-1] == EOS and PAD not in ids
    assert tok.decode(ids) == "the food was great."
    assert tok.token_str(EOS) == "<eos>"
    assert tok.decode(tok.encode("12+7=") + [EOS] + tok.encode("junk")) == "12+7="
    with pytest.raises(ValueError, match="alphabet"):
        tok.encode("café")


def test_oracle_lexicon_and_negation():
    assert oracle.sentiment(" great and warm.") == 3.0
    assert oracle.sentiment(" not bad.") == 1.0
    assert oracle.sentiment(" dull, but fresh.") == 0.0
    assert oracle.prefer(" great.", " awful.") == 1 and oracle.prefer(" okay.", " okay.") == 0


def test_corpus_is_deterministic_and_pairs_are_ranked(tok):
    prompts = corpus.review_prompts()
    assert corpus.review_corpus(prompts, 50, 3) == corpus.review_corpus(prompts, 50, 3)
    for p, chosen, rejected in corpus.preference_pairs(prompts, 100, 1):
        assert oracle.sentiment(chosen) > oracle.sentiment(rejected)
        tok.encode(p + chosen + rejected)  # every character is in the alphabet
    split = corpus.split_prompts(corpus.arithmetic_prompts(9), 0.2, 0)
    assert len(split.heldout) == 20 and not set(split.heldout) & set(split.train)
    assert corpus.arithmetic_answer("12+7=") == "19"


def test_left_padded_prompts_and_masks(tok):
    query, qmask = encode_prompts(tok, ["1+2=", "10+20="], "cpu")
    assert query.shape == (2, 7) and qmask.tolist()[0] == [False, False, True, True, True, True, True]
    assert query[0, 2] == BOS and query[1, 0] == BOS
    response, rmask = encode_responses(tok, ["3", "30"], "cpu")
    assert response.tolist() == [[tok.stoi["3"], EOS, PAD], [tok.stoi["3"], tok.stoi["0"], EOS]]
    assert rmask.tolist() == [[True, True, False], [True, True, True]]


def test_padding_does_not_change_the_logits(lm, tok):
    """A left-padded prompt gives the same next-token logits as the same prompt unpadded."""
    alone, amask = encode_prompts(tok, ["3+4="], "cpu")
    both, bmask = encode_prompts(tok, ["3+4=", "13+24="], "cpu")
    with torch.no_grad():
        la, _, _ = lm(alone, amask)
        lb, _, _ = lm(both, bmask)
    assert torch.allclose(la[0, -1], lb[0, -1], atol=1e-5)


def test_kv_cache_generation_equals_full_recompute(lm, tok):
    query, qmask = encode_prompts(tok, ["the food was", "our room seemed", "a"], "cpu")
    r1, m1, l1 = generate(lm, query, qmask, 20, greedy=True, use_cache=True, return_logits=True)
    r2, m2, l2 = generate(lm, query, qmask, 20, greedy=True, use_cache=False, return_logits=True)
    assert torch.equal(r1, r2) and torch.equal(m1, m2)
    assert torch.allclose(l1, l2, atol=1e-5)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    s1, _ = generate(lm, query, qmask, 20, generator=g1, use_cache=True)
    s2, _ = generate(lm, query, qmask, 20, generator=g2, use_cache=False)
    assert torch.equal(s1, s2)


def test_response_mask_stops_after_eos(lm, tok):
    with torch.no_grad():
        lm.head.weight.zero_()
    g = torch.Generator().manual_seed(0)
    ro = rollout(lm, tok, ["the food was"] * 16, 12, 1.0, g, "cpu")
    for row, mask in zip(ro.response.tolist(), ro.response_mask.tolist()):
        n = sum(mask)
        assert mask == [True] * n + [False] * (len(mask) - n)
        assert all(t == PAD for t in row[n:])
        if EOS in row:
            assert row.index(EOS) == n - 1
    logprobs, entropy = response_logprobs(lm, ro.seq, ro.seq_mask, ro.query.size(1))
    assert logprobs.shape == ro.response.shape == entropy.shape
    assert torch.all(logprobs <= 0)


def test_scalar_model_scores_at_the_last_real_token_and_weights_round_trip(tok):
    torch.manual_seed(1)
    rm = ScalarModel(LMConfig(tok.vocab_size, 16, 1, 2, 48)).eval()
    torch.nn.init.normal_(rm.score.weight)
    q, qm = encode_prompts(tok, ["the food was", "the cafe felt"], "cpu")
    r, rmask = encode_responses(tok, [" good.", " very dull."], "cpu")
    seq, mask = torch.cat([q, r], 1), torch.cat([qm, rmask], 1)
    with torch.no_grad():
        per_token = rm(seq, mask)
        score = rm.sequence_score(seq, mask)
    last = [q.size(1) + 6, q.size(1) + 11]  # the EOS positions
    assert torch.equal(score, per_token[torch.arange(2), torch.tensor(last)])
    clone = build_model(load_payload(model_bytes(rm, "reward_model", tok.to_dict())))
    with torch.no_grad():
        assert torch.equal(clone.sequence_score(seq, mask), score)


def test_context_overflow_is_an_error(lm):
    with pytest.raises(ValueError, match="context"):
        lm(torch.full((1, 49), 5))


def test_text_env_token_mdp():
    from rltui.envs.text import make_arithmetic
    from rltui.schemas.lm import ArithmeticParams

    env = make_arithmetic(ArithmeticParams(max_operand=9))
    tok = env.tokenizer
    s = env.reset("3+4=")
    assert s == {"prompt": "3+4=", "prefix": ""}
    s, r, term, trunc = env.step(tok.stoi["7"])
    assert (s["prefix"], r, term, trunc) == ("7", 0.0, False, False)
    s, r, term, trunc = env.step(EOS)
    assert (r, term) == (1.0, True)
    env.reset("3+4=")
    for ch in "777":
        _, r, term, trunc = env.step(tok.stoi[ch])
    _, r, term, trunc = env.step(tok.stoi["7"])
    assert trunc and not term and r == 0.0
    assert len(env.sample_prompts(random.Random(0), 5, "heldout")) == 5
    assert set(env.eval_prompts(40)) <= set(env.heldout_prompts)


def test_schemas_and_text_env_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, rltui.registry as r, rltui.envs.text; assert {'lm-reviews', 'lm-arithmetic'} <= set(r.envs()); "
            "assert {'lm_pretrain', 'reward_model', 'lm_ppo', 'grpo', 'dpo'} <= set(r.algos()); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_run_refs_are_checked_at_the_door():
    from rltui.config import ConfigError, load_config_text

    base = '[env]\nid = "lm-reviews"\n[algo]\nid = "lm_ppo"\n'
    assert load_config_text(base + "init_run = 12\n").algo.init_run == 12
    assert load_config_text(base + 'init_run = "latest:lm_pretrain"\n').algo.init_run == "latest:lm_pretrain"
    with pytest.raises(ConfigError, match="algo.init_run"):
        load_config_text(base + 'init_run = "newest"\n')
