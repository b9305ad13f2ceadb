"""Keyboard-first ranking: what each key does to the ranking being built."""

from labeling.keyboard import FLAG, apply_key

ORDER = [30, 10, 20]  # completion ids in the order shown: A, B, C


def press(keys, picks=None, history=None):
    picks, history, result = dict(picks or {}), list(history or []), None
    for key in keys:
        result = apply_key(key, ORDER, picks, history)
        picks, history = result.picks, result.history
    return result


def test_number_keys_rank_the_responses_in_the_order_shown():
    result = press(["2", "1", "3"])
    assert result.picks == {30: "2", 10: "1", 20: "3"} and result.action is None
    assert press(["1", "1", "2"]).picks == {30: "1", 10: "1", 20: "2"}  # a tie


def test_f_flags_z_takes_back_s_skips_enter_submits():
    assert press(["1", "f", "2"]).picks == {30: "1", 10: FLAG, 20: "2"}
    assert press(["1", "2", "z", "3"]).picks == {30: "1", 10: "3"}
    assert press(["1", "z", "z"]).action == "undo_submission"  # nothing left to take back: the last submission
    assert press(["s"]).action == "skip" and press(["1", "Enter"]).action == "submit"
    assert press(["F", "S"]).action == "skip"  # capitals too


def test_keys_out_of_range_or_after_the_last_response_say_why():
    assert "ranks go from 1 to 3" in press(["4"]).message and press(["4"]).picks == {}
    full = press(["1", "2", "3", "1"])
    assert full.picks == {30: "1", 10: "2", 20: "3"} and "press Enter" in full.message


def test_a_pick_made_with_the_mouse_is_skipped_and_not_taken_back():
    result = press(["2", "z", "z"], picks={30: "1"})  # A picked by mouse: keys start at B
    assert result.action == "undo_submission" and result.picks == {30: "1"}
    assert press(["2"], picks={30: "1"}).picks == {30: "1", 10: "2"}
