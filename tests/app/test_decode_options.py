"""A request's decoding options onto the serving model's SearchConfig (app.schemas.DecodeOptions.search_config,
the one mapping): what the request leaves out is the model's, n_best widens the beam, max_length fixes the limit."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.schemas import DecodeOptions, TranslateRequest
from model.search import SearchConfig

MODEL = SearchConfig(beam_size=3, length_penalty=0.6, max_len_a=1.2, max_len_b=7)  # a model folder's settings


def test_what_the_request_leaves_out_is_the_models() -> None:
    assert DecodeOptions().search_config(MODEL) == MODEL
    body = TranslateRequest.model_validate({"text": "x", "source": "en", "target": "de", "n_best": 2})
    assert body.decode_options().search_config(MODEL) == SearchConfig(
        beam_size=3, n_best=2, length_penalty=0.6, max_len_a=1.2, max_len_b=7)


@pytest.mark.parametrize(("beam_size", "n_best", "beam"), [(None, 5, 5), (1, 3, 3), (8, 2, 8), (1, 1, 1)])
def test_n_best_widens_the_beam(beam_size: int | None, n_best: int, beam: int) -> None:
    config = DecodeOptions(beam_size=beam_size, n_best=n_best).search_config(MODEL)
    assert (config.beam_size, config.n_best) == (beam, n_best)
    first_leg = DecodeOptions(beam_size=beam_size, n_best=n_best).best_only().search_config(MODEL)
    assert first_leg.n_best == 1 and first_leg.beam_size == (MODEL.beam_size if beam_size is None else beam)


def test_max_length_replaces_the_proportional_limit() -> None:
    config = DecodeOptions(max_length=12, return_attention=True).search_config(MODEL)
    assert (config.max_len_a, config.max_len_b, config.return_attention) == (0.0, 13, True)


def test_options_are_strict_json_types() -> None:
    with pytest.raises(ValidationError):
        DecodeOptions.model_validate({"beam_size": "3"})
    assert DecodeOptions.model_validate({"beam_size": 3.0}).beam_size == 3


def test_a_request_turns_the_shortlist_on_or_off_and_a_pivot_leg_keeps_it() -> None:
    model = SearchConfig(shortlist=True)
    assert DecodeOptions().search_config(model).shortlist is True  # the model's setting
    assert DecodeOptions(shortlist=False).search_config(model).shortlist is False
    assert DecodeOptions(shortlist=True).best_only().search_config(MODEL).shortlist is True
    with pytest.raises(ValidationError):
        DecodeOptions.model_validate({"shortlist": "yes"})
