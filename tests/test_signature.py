from genmetrics.signature import differences, render


def test_render_puts_metric_first_and_abbreviates():
    sig = {"metric": "bleu", "v": "1", "tokenize": "13a", "lowercase": True,
           "smooth_value": None, "refs": "sha256:" + "ab" * 32}
    assert render(sig) == "bleu|v:1|tok:13a|lc:yes|sv:-|refs:abababab"


def test_render_nested_and_lists():
    assert render({"metric": "m", "w": {"a": 1, "b": False}, "xs": [1, 2]}) == "m|w:a=1,b=no|xs:1,2"


def test_differences_names_changed_and_missing_fields():
    assert differences({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {"b": (2, 3), "c": (None, 4)}
    assert differences({"a": 1}, {"a": 1}) == {}
