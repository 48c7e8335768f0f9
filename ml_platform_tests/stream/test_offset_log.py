"""The lake as offset log, on hand-made files: where consuming resumes, and which gaps, overlaps and
left-over dead letters the listing reveals (no broker needed)."""

from __future__ import annotations

from ml_platform.stream.offset_log import (
    batch_path,
    dead_letter_path,
    lake_offsets,
    offset_log_problems,
    orphan_dead_letters,
)


def test_the_next_offset_is_the_last_files_end_plus_one(lake):
    for first, last in [(0, 99), (100, 149), (150, 150)]:
        lake.write_bytes(batch_path(0, first, last), b"x")
    lake.write_bytes(batch_path(2, 0, 9), b"x")
    lake.write_bytes(dead_letter_path(2, 0, 9), b"x")
    offsets = lake_offsets(lake)
    assert sorted(offsets) == [0, 2]
    assert (offsets[0].next_offset, offsets[0].files, offsets[0].messages) == (151, 3, 151)
    assert (offsets[2].next_offset, offsets[2].dead_letter_files) == (10, 1)
    assert offset_log_problems(lake) == []


def test_gaps_and_overlaps_are_reported(lake):
    for first, last in [(0, 99), (120, 130), (125, 140)]:
        lake.write_bytes(batch_path(1, first, last), b"x")
    problems = offset_log_problems(lake)
    assert problems[0] == "partition 1: offsets 100..119 are in no file (gap)"
    assert "overlap" in problems[1] and len(problems) == 2


def test_a_dead_letter_file_without_its_batch_is_an_orphan(lake):
    lake.write_bytes(batch_path(0, 0, 9), b"x")
    lake.write_bytes(dead_letter_path(0, 10, 19), b"x")  # the sink died before writing batch 10..19
    assert orphan_dead_letters(lake) == [dead_letter_path(0, 10, 19)]
    assert lake_offsets(lake)[0].next_offset == 10
