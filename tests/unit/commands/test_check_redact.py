"""`check` masks whole secret values where they stand as tokens, not every substring."""

from __future__ import annotations

from connector.commands.check import redact


def test_a_short_secret_inside_a_longer_word_is_left_alone() -> None:
    # The README's demo credentials are K and T; a cluster id contains both letters.
    detail = "1 broker(s) answered; cluster 7pABualZKoG8G46TxQ"
    assert redact(detail, ["K", "T"]) == detail


def test_a_short_secret_standing_as_a_token_is_masked() -> None:
    text = "key=K token: 'T' (T) K"
    assert redact(text, ["K", "T"]) == "key=*** token: '***' (***) ***"


def test_a_long_secret_is_masked_wherever_it_occurs() -> None:
    secret = "sandbox-api-token-s3cret"  # noqa: S105 - a made-up value to mask
    text = f"url?token%3D{secret}&x=1 and {secret}."
    assert redact(text, [secret]) == "url?token%3D***&x=1 and ***."


def test_a_secret_containing_another_is_masked_whole() -> None:
    assert redact("a=abcdefghij", ["abc", "abcdefghij"]) == "a=***"
    assert redact("a=abc", ["abcdefghij", "abc"]) == "a=***"


def test_regex_characters_in_a_secret_are_literal() -> None:
    assert redact("p=a.b*c+", ["a.b*c+"]) == "p=***"
    assert redact("p=axbbc", ["a.b*c"]) == "p=axbbc"


def test_empty_secrets_change_nothing() -> None:
    assert redact("nothing here", ["", ""]) == "nothing here"
