"""``from akorn import X`` for every public name of the core, the adapter included."""

import akorn


def test_every_public_name_imports():
    for name in akorn.__all__:
        assert getattr(akorn, name) is not None, name


def test_the_adapter_is_public():
    from akorn import KuramotoAdapter
    from akorn.core.adapter import KuramotoAdapter as defined

    assert KuramotoAdapter is defined
