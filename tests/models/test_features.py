"""timm's ``indices`` convention for ``forward_intermediates``, as the model files use it."""

import pytest

from zeromamba.models._features import take_indices


def test_none_takes_every_layer():
    assert take_indices(4, None) == ([0, 1, 2, 3], 3)


def test_an_int_takes_the_last_n():
    assert take_indices(4, 1) == ([3], 3)
    assert take_indices(4, 3) == ([1, 2, 3], 3)


def test_a_sequence_names_them_negative_from_the_end():
    assert take_indices(4, [0, -1]) == ([0, 3], 3)
    assert take_indices(4, (1, 2)) == ([1, 2], 2)


@pytest.mark.parametrize("indices", [0, 5, -1])
def test_an_int_outside_one_to_count_is_refused(indices):
    with pytest.raises(ValueError, match="between 1 and 4 stages"):
        take_indices(4, indices, unit="stage")


@pytest.mark.parametrize("indices", [[4], [-5], []])
def test_a_named_index_out_of_range_is_refused(indices):
    with pytest.raises(ValueError, match="out of range 0..3"):
        take_indices(4, indices)
