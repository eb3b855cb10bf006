"""Annotation readers: official Kinetics CSV, "path label" lists, comma lists, class lists."""

import os

import pytest

from video_ats.data.annotations import AnnotationError, load_class_list, read_annotations


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def touch(path):
    return write(path, "")


OFFICIAL_CSV = (
    "label,youtube_id,time_start,time_end,split\n"
    '"air drumming",aaaaaaaaaa1,17,27,val\n'
    "abseiling,bbbbbbbbbb2,0,10,val\n"
    '"playing guitar, loudly",ccccccccc3,105,115,val\n'
)


def test_kinetics_csv_finds_clips_in_class_folders_and_labels_by_sorted_name(tmp_path):
    csv = write(tmp_path / "val.csv", OFFICIAL_CSV)
    touch(tmp_path / "videos/air drumming/aaaaaaaaaa1_000017_000027.mp4")
    touch(tmp_path / "videos/abseiling/bbbbbbbbbb2_000000_000010.mp4")
    touch(tmp_path / "videos/playing guitar, loudly/ccccccccc3_000105_000115.mp4")

    records, classes, fmt = read_annotations(csv, tmp_path / "videos")

    assert fmt == "kinetics_csv"
    assert classes == ["abseiling", "air drumming", "playing guitar, loudly"]
    assert [r.label for r in records] == [1, 0, 2]
    assert [r.line for r in records] == [2, 3, 4]
    assert records[0].path == str(tmp_path / "videos/air drumming/aaaaaaaaaa1_000017_000027.mp4")
    assert records[2].class_name == "playing guitar, loudly"


def test_kinetics_csv_finds_flat_clips_and_other_extensions(tmp_path):
    csv = write(tmp_path / "val.csv", OFFICIAL_CSV)
    touch(tmp_path / "flat/aaaaaaaaaa1_000017_000027.mp4")
    touch(tmp_path / "flat/bbbbbbbbbb2_000000_000010.webm")
    touch(tmp_path / "flat/ccccccccc3_000105_000115.mkv")

    records = read_annotations(csv, tmp_path / "flat").records

    assert [os.path.relpath(r.path, tmp_path / "flat") for r in records] == [
        "aaaaaaaaaa1_000017_000027.mp4",
        "bbbbbbbbbb2_000000_000010.webm",
        "ccccccccc3_000105_000115.mkv",
    ]


def test_kinetics_csv_matches_underscore_class_folders_one_split_folder_deep(tmp_path):
    csv = write(tmp_path / "val.csv", OFFICIAL_CSV)
    touch(tmp_path / "root/val/air_drumming/aaaaaaaaaa1_000017_000027.mp4")

    record = read_annotations(csv, tmp_path / "root").records[0]

    assert record.path == str(tmp_path / "root/val/air_drumming/aaaaaaaaaa1_000017_000027.mp4")


def test_missing_clip_gets_its_path_in_the_layout_of_the_found_clips(tmp_path):
    csv = write(tmp_path / "val.csv", OFFICIAL_CSV)
    touch(tmp_path / "v/air drumming/aaaaaaaaaa1_000017_000027.mp4")
    touch(tmp_path / "v/playing guitar, loudly/ccccccccc3_000105_000115.mp4")

    missing = read_annotations(csv, tmp_path / "v").records[1]

    assert missing.path == str(tmp_path / "v/abseiling/bbbbbbbbbb2_000000_000010.mp4")
    assert not os.path.exists(missing.path)


def test_kinetics_csv_with_is_cc_column(tmp_path):
    csv = write(
        tmp_path / "train.csv",
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "zumba,zzzzzzzzzz1,3,13,train,0\n"
        "abseiling,aaaaaaaaaa1,4,14,train,1\n",
    )
    records, classes, _ = read_annotations(csv, tmp_path)
    assert classes == ["abseiling", "zumba"]
    assert [r.label for r in records] == [1, 0]


def test_test_csv_without_label_column_gives_label_minus_one(tmp_path):
    csv = write(
        tmp_path / "test.csv",
        "youtube_id,time_start,time_end,split\naaaaaaaaaa1,17,27,test\nbbbbbbbbbb2,0,10,test\n",
    )
    records, classes, fmt = read_annotations(csv, tmp_path)
    assert fmt == "kinetics_csv"
    assert classes == []
    assert [r.label for r in records] == [-1, -1]
    assert records[1].path == str(tmp_path / "bbbbbbbbbb2_000000_000010.mp4")


def test_class_list_file_fixes_the_label_indices(tmp_path):
    classes_file = write(tmp_path / "classes.txt", "playing guitar, loudly\nabseiling\nair drumming\n")
    csv = write(tmp_path / "val.csv", OFFICIAL_CSV)
    records, classes, _ = read_annotations(csv, tmp_path, class_list=classes_file)
    assert classes == ["playing guitar, loudly", "abseiling", "air drumming"]
    assert [r.label for r in records] == [2, 1, 0]


def test_class_names_match_across_underscores_and_case(tmp_path):
    csv = write(tmp_path / "val.csv", "label,youtube_id,time_start,time_end,split\nAir_Drumming,a,1,2,val\n")
    records = read_annotations(csv, tmp_path, class_list=["abseiling", "air drumming"]).records
    assert records[0].label == 1


def test_unknown_class_is_an_error_naming_file_and_line(tmp_path):
    csv = write(tmp_path / "val.csv", OFFICIAL_CSV)
    with pytest.raises(AnnotationError, match=r"val\.csv:3: class 'abseiling' is not in the class list"):
        read_annotations(csv, tmp_path, class_list=["air drumming", "playing guitar, loudly"])


def test_kinetics_csv_row_with_missing_field_is_an_error_naming_the_line(tmp_path):
    csv = write(
        tmp_path / "train.csv",
        "label,youtube_id,time_start,time_end,split\nabseiling,a,1,11,train\nabseiling,b,1,train\n",
    )
    with pytest.raises(AnnotationError, match=r"train\.csv:3: expected 5 fields") as error:
        read_annotations(csv, tmp_path)
    assert error.value.line == 3


def test_kinetics_csv_non_numeric_time_is_an_error_naming_the_line(tmp_path):
    csv = write(
        tmp_path / "train.csv",
        "label,youtube_id,time_start,time_end,split\n\nabseiling,a,one,11,train\n",
    )
    with pytest.raises(AnnotationError, match=r"train\.csv:3: time_start 'one'"):
        read_annotations(csv, tmp_path)


def test_space_list_reads_paths_and_integer_labels_relative_to_the_root(tmp_path):
    listing = write(tmp_path / "train.csv", "a/x.mp4 3\n\n/abs/y.mp4 0\nz.mp4\n")
    records, classes, fmt = read_annotations(listing, "/data/k400")
    assert fmt == "space_list"
    assert classes == []
    assert [(r.path, r.label, r.line) for r in records] == [
        ("/data/k400/a/x.mp4", 3, 1),
        ("/abs/y.mp4", 0, 3),
        ("/data/k400/z.mp4", -1, 4),
    ]


def test_mmaction2_list_with_tabs_and_a_class_list(tmp_path):
    listing = write(tmp_path / "k400_val_list_videos.txt", "abseiling/a.mp4\t0\nzumba/b.mp4\t399\n")
    records, classes, _ = read_annotations(listing, tmp_path, class_list="kinetics400")
    assert [r.label for r in records] == [0, 399]
    assert classes[399] == "zumba"


@pytest.mark.parametrize(
    "line, message",
    [
        ("a.mp4 1 2", r"list\.txt:2: expected 'path' or 'path label'.*got 3 fields"),
        ("a.mp4 abseiling", r"list\.txt:2: label 'abseiling' is not an integer"),
        ("a.mp4 -3", r"list\.txt:2: label -3 is outside"),
    ],
)
def test_malformed_space_list_line_is_an_error_naming_the_line(tmp_path, line, message):
    listing = write(tmp_path / "list.txt", f"ok.mp4 1\n{line}\n")
    with pytest.raises(AnnotationError, match=message):
        read_annotations(listing, tmp_path)


def test_label_beyond_the_class_list_is_an_error(tmp_path):
    listing = write(tmp_path / "list.txt", "a.mp4 3\n")
    with pytest.raises(AnnotationError, match=r"list\.txt:1: label 3 is outside the class list of 3"):
        read_annotations(listing, tmp_path, class_list=["a", "b", "c"])


def test_comma_list_reads_ats_and_xvit_styles(tmp_path):
    listing = write(tmp_path / "val.txt", "train/abseiling/a.mp4,4\nb.mp4,300,7\nc.mp4\n")
    records, _, fmt = read_annotations(listing, tmp_path)
    assert fmt == "comma_list"
    assert [(os.path.relpath(r.path, tmp_path), r.label) for r in records] == [
        ("train/abseiling/a.mp4", 4), ("b.mp4", 7), ("c.mp4", -1)
    ]


def test_malformed_comma_list_line_is_an_error_naming_the_line(tmp_path):
    listing = write(tmp_path / "val.txt", "a.mp4,1\nb.mp4,many,2\n")
    with pytest.raises(AnnotationError, match=r"val\.txt:2: num_frames 'many' is not an integer"):
        read_annotations(listing, tmp_path)


def test_explicit_format_overrides_detection(tmp_path):
    listing = write(tmp_path / "odd.txt", "dir,with,commas/a.mp4 5\n")
    records = read_annotations(listing, tmp_path, format="space_list").records
    assert records[0].label == 5


def test_missing_annotation_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        read_annotations(tmp_path / "nothing.csv", tmp_path)


def test_shipped_kinetics_class_lists_have_400_and_600_sorted_unique_names():
    k400, k600 = load_class_list("kinetics400"), load_class_list("kinetics600")
    assert len(k400) == 400 and len(set(k400)) == 400
    assert len(k600) == 600 and len(set(k600)) == 600
    assert k400 == sorted(k400) and k600 == sorted(k600)
    assert (k400[0], k400[1], k400[-1]) == ("abseiling", "air drumming", "zumba")
    assert (k600[0], k600[1], k600[-1]) == ("abseiling", "acting in play", "zumba")


def test_class_list_with_a_repeated_name_is_an_error_naming_the_line(tmp_path):
    classes = write(tmp_path / "classes.txt", "a\nb\n\"a\"\n")
    with pytest.raises(AnnotationError, match=r"classes\.txt:3: class 'a' repeats the class on line 1"):
        load_class_list(classes)


def test_class_list_with_a_blank_line_inside_is_an_error(tmp_path):
    classes = write(tmp_path / "classes.txt", "a\n\nb\n")
    with pytest.raises(AnnotationError, match=r"classes\.txt:2: empty class name"):
        load_class_list(classes)


# --- Encodings: what spreadsheet programs and other systems write. ------------------------------


def test_a_utf8_byte_order_mark_before_the_header_is_ignored(tmp_path):
    # Excel's "CSV UTF-8" starts the file with EF BB BF; the first column must still be `label`.
    csv = tmp_path / "val.csv"
    csv.write_bytes(b"\xef\xbb\xbf" + OFFICIAL_CSV.encode("utf-8"))
    records, classes, fmt = read_annotations(csv, tmp_path)
    assert fmt == "kinetics_csv"
    assert [r.label for r in records] == [1, 0, 2]


def test_a_byte_order_mark_before_another_first_column_is_ignored(tmp_path):
    csv = tmp_path / "val.csv"
    csv.write_bytes(b"\xef\xbb\xbfyoutube_id,label,time_start,time_end\naaaaaaaaaa1,abseiling,1,11\n")
    records, classes, _ = read_annotations(csv, tmp_path)
    assert classes == ["abseiling"] and records[0].label == 0


def test_a_byte_order_mark_before_a_list_line_is_ignored(tmp_path):
    listing = tmp_path / "train.txt"
    listing.write_bytes(b"\xef\xbb\xbfa.mp4 3\nb.mp4 1\n")
    assert [(os.path.basename(r.path), r.label) for r in read_annotations(listing, tmp_path).records] == [
        ("a.mp4", 3), ("b.mp4", 1)]


def test_utf16_with_a_byte_order_mark_is_decoded(tmp_path):
    csv = tmp_path / "val.csv"
    csv.write_bytes(OFFICIAL_CSV.encode("utf-16"))          # BOM FF FE, then UTF-16 LE
    assert [r.label for r in read_annotations(csv, tmp_path).records] == [1, 0, 2]


def test_a_latin1_byte_is_an_error_naming_file_line_and_byte(tmp_path):
    csv = tmp_path / "val.csv"
    csv.write_bytes("label,youtube_id,time_start,time_end\nabseiling,a,1,11\ncaf\xe9 drinking,b,1,11\n"
                    .encode("latin-1"))
    with pytest.raises(AnnotationError, match=r"val\.csv:3: byte 0xe9 \(column 4\) is not utf-8; save the file "
                                              r"as UTF-8") as error:
        read_annotations(csv, tmp_path)
    assert (error.value.path, error.value.line) == (str(csv), 3)


def test_utf16_without_a_byte_order_mark_is_an_error_naming_the_file(tmp_path):
    csv = tmp_path / "val.csv"
    csv.write_bytes(OFFICIAL_CSV.encode("utf-16-le"))
    with pytest.raises(AnnotationError, match=r"val\.csv:1: holds NUL characters: UTF-16 text without a "
                                              r"byte-order mark"):
        read_annotations(csv, tmp_path)


def test_an_unclosed_quote_or_a_time_window_that_ends_before_it_starts_is_an_error(tmp_path):
    csv = write(tmp_path / "val.csv", "label,youtube_id,time_start,time_end\nabseiling,a,10,10\n")
    with pytest.raises(AnnotationError, match=r"val\.csv:2: time_end 10 is not after time_start 10"):
        read_annotations(csv, tmp_path)
    csv = write(tmp_path / "quote.csv", 'label,youtube_id,time_start,time_end\n"abseiling,a,1,11\n')
    with pytest.raises(AnnotationError, match=r"quote\.csv:2: expected 4 fields"):
        read_annotations(csv, tmp_path)


@pytest.mark.parametrize("label", ["1_0", "\uff13", "+-1"])
def test_a_label_only_python_would_read_as_an_integer_is_an_error(tmp_path, label):
    listing = write(tmp_path / "list.txt", f"a.mp4 {label}\n")
    with pytest.raises(AnnotationError, match=r"list\.txt:1: label .* is not an integer"):
        read_annotations(listing, tmp_path)


# --- What a split needs: labels, classes, no repeats. -------------------------------------------


def records_of(tmp_path, text, name="list.txt"):
    return read_annotations(write(tmp_path / name, text), tmp_path).records


def test_rows_without_a_label_are_an_error_listing_the_first_lines_and_their_count(tmp_path):
    from video_ats.data.annotations import check_labels

    records = records_of(tmp_path, "a.mp4 0\nb.mp4\nc.mp4 1\nd.mp4\n")
    with pytest.raises(AnnotationError, match=r"list\.txt:2: 2 of 4 rows have no label \(lines 2, 4\); a training "
                                              r"or validation split needs a label on every row"):
        check_labels(records, tmp_path / "list.txt")
    check_labels(records, tmp_path / "list.txt", require_labels=False)       # a test split may have them


def test_an_empty_label_cell_of_a_kinetics_csv_is_a_row_without_a_label(tmp_path):
    from video_ats.data.annotations import check_labels

    csv = write(tmp_path / "train.csv", "label,youtube_id,time_start,time_end,split\nabseiling,a,1,11,train\n"
                                        ",b,1,11,train\n")
    records = read_annotations(csv, tmp_path).records
    with pytest.raises(AnnotationError, match=r"train\.csv:3: 1 of 2 rows has no label \(lines 3\)"):
        check_labels(records, csv)


def test_labels_outside_the_model_classes_are_an_error_listing_them(tmp_path):
    from video_ats.data.annotations import check_labels

    records = records_of(tmp_path, "a.mp4 0\nb.mp4 6\nc.mp4 5\nd.mp4 9\n")
    with pytest.raises(AnnotationError, match=r"list\.txt:2: 2 rows have a label outside the model's 6 classes "
                                              r"\[0, 6\) \(labels \[6, 9\]; lines 2, 4\)"):
        check_labels(records, tmp_path / "list.txt", num_classes=6)


def test_rows_naming_the_same_video_are_found_with_their_first_row(tmp_path):
    from video_ats.data.annotations import describe_duplicates, find_duplicates

    records = records_of(tmp_path, "a.mp4 0\nb.mp4 1\n./a.mp4 0\nb.mp4 2\nc.mp4 1\n")
    repeats = find_duplicates(records)
    assert [(repeat.line, first.line) for repeat, first in repeats] == [(3, 1), (4, 2)]
    assert describe_duplicates(repeats) == "2 rows repeat a video of an earlier row (line 3 repeats line 1, " \
                                           "line 4 repeats line 2)"


def test_a_folder_named_like_a_clip_is_found_so_it_is_reported_as_a_folder(tmp_path):
    csv = write(tmp_path / "val.csv", OFFICIAL_CSV)
    (tmp_path / "v/abseiling/bbbbbbbbbb2_000000_000010.mp4").mkdir(parents=True)
    record = read_annotations(csv, tmp_path / "v").records[1]
    assert record.path == str(tmp_path / "v/abseiling/bbbbbbbbbb2_000000_000010.mp4")
    assert os.path.isdir(record.path)


def test_a_clip_found_by_bare_youtube_id_is_the_row_time_window_of_that_file(tmp_path):
    csv = write(tmp_path / "val.csv", OFFICIAL_CSV)
    touch(tmp_path / "v/air drumming/aaaaaaaaaa1.mp4")                      # untrimmed download
    touch(tmp_path / "v/abseiling/bbbbbbbbbb2_000000_000010.mp4")           # trimmed clip
    records = read_annotations(csv, tmp_path / "v").records
    assert records[0].path == str(tmp_path / "v/air drumming/aaaaaaaaaa1.mp4")
    assert records[0].window == (17.0, 27.0)
    assert records[1].window is None
