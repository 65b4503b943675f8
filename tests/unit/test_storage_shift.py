"""The ID map of a storage shift: in-container ID k stays k when the ranges move."""

from ansible_collections.fleetid.subid.plugins.module_utils._storage_shift import IdShift


def test_the_kth_old_id_becomes_the_kth_new_id_across_several_ranges():
    shift = IdShift([(100, 10), (500, 10)], [(1000, 15), (2000, 5)])
    assert [shift(i) for i in (100, 109, 500, 504, 505, 509)] == [1000, 1009, 1010, 1014, 2000, 2004]


def test_an_id_outside_the_old_ranges_keeps_its_value():
    shift = IdShift([(100, 10)], [(1000, 10)])
    assert shift(99) == 99 and shift(110) == 110 and shift(0) == 0  # the owner's own UID does not move


def test_an_old_id_past_the_end_of_the_new_ranges_has_no_new_id():
    shift = IdShift([(100, 10)], [(1000, 5)])
    assert shift(104) == 1004
    assert shift(105) is None and shift(109) is None


def test_overlapping_old_and_new_ranges_map_by_position():
    # 7000000+4194304 to 9000000+4194304: the overlap's IDs are old IDs and new IDs at once.
    shift = IdShift([(7000000, 4194304)], [(9000000, 4194304)])
    assert shift(9000000) == 11000000 and shift(11194303) == 13194303
    assert shift.in_old(9000000) and not shift.in_old(11194304)
