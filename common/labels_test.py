import pandas as pd
import pytest

from common.labels import LabelError, check_labels, read_labels, without_rows


def write(tmp_path, text, name="labels.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text", [
    "id,boneage,male\n1,120,True\n2,30.5,False\n",
    "id,boneage,male\n1,120,1\n2,30.5,0\n",
    "Image ID,male,Bone Age (months)\n1,TRUE,120\n2,FALSE,30.5\n",
    "Case ID,Sex,Ground truth bone age (months)\n1,M,120\n2,F,30.5\n",
    "ID, Sex ,Bone Age (months)\n1,male,120\n2,female,30.5\n",
])
def test_header_variants_map_to_one_schema(tmp_path, text):
    df = read_labels(write(tmp_path, text))
    assert list(df["id"]) == ["1", "2"]
    assert list(df["boneage_months"]) == [120.0, 30.5]
    assert list(df["male"]) == [1, 0]


def test_excel_ground_truth_sheet(tmp_path):
    path = tmp_path / "Bone age ground truth.xlsx"
    pd.DataFrame({"Case ID": [4360, 4361], "Sex": ["M", "F"],
                  "Ground truth bone age (months)": [168.93, 73.26]}).to_excel(path, index=False)
    df = read_labels(path)
    assert list(df["id"]) == ["4360", "4361"] and list(df["male"]) == [1, 0]
    assert df["boneage_months"].tolist() == [168.93, 73.26]


def test_missing_columns_names_found_and_expected(tmp_path):
    with pytest.raises(LabelError) as e:
        read_labels(write(tmp_path, "patient,age_years\n1,10\n"))
    msg = str(e.value)
    assert "missing column" in msg and "['patient', 'age_years']" in msg and "boneage" in msg and "male" in msg


def test_every_bad_row_is_listed_with_file_and_row(tmp_path):
    path = write(tmp_path, "id,boneage,male\n1,120,True\n2,-3,False\n3,260,True\n4,100,X\n4,90,True\n5,abc,F\n")
    with pytest.raises(LabelError) as e:
        read_labels(path)
    msg = str(e.value)
    assert "row 2 (id 2)" in msg and "outside 0-240" in msg
    assert "row 3 (id 3)" in msg
    assert "row 4 (id 4)" in msg and "unknown sex value 'X'" in msg
    assert "row 5 (id 4)" in msg and "duplicate id" in msg
    assert "row 6 (id 5)" in msg and "not a number" in msg
    assert str(path) in msg


def test_problems_collected_instead_of_raised(tmp_path):
    problems = []
    df = read_labels(write(tmp_path, "id,boneage,male\n1,120,True\n2,300,False\n"), problems=problems)
    assert list(df["id"]) == ["1"] and len(problems) == 1 and problems[0].row == 2


def test_split_column_and_aliases(tmp_path):
    df = read_labels(write(tmp_path, "id,boneage,male,split\n1,1,1,train\n2,2,0,val\n3,3,1,TEST\n"))
    assert list(df["split"]) == ["train", "validation", "test"]
    with pytest.raises(LabelError, match="unknown split 'holdout'"):
        read_labels(write(tmp_path, "id,boneage,male,split\n1,1,1,holdout\n", "b.csv"))


@pytest.mark.parametrize("sep, name", [(";", "semicolon"), ("\t", "tab")])
def test_other_separators_are_named_with_the_fix(tmp_path, sep, name):
    path = write(tmp_path, sep.join(["id", "boneage", "male"]) + "\n" + sep.join(["1", "120,5", "M"]) + "\n")
    with pytest.raises(LabelError) as e:
        read_labels(path)
    msg = str(e.value)
    assert f"looks {name}-separated" in msg and "expects comma-separated" in msg and str(path) in msg


def test_a_header_without_rows_is_an_error(tmp_path):
    with pytest.raises(LabelError, match="the labels file has no rows"):
        read_labels(write(tmp_path, "id,boneage,male\n"))


def test_check_labels_keeps_bad_rows_for_the_one_pass_report(tmp_path):
    df, problems = check_labels(write(tmp_path, "id,boneage,male\n1,120,True\n2,300,False\n3,50,X\n"))
    assert list(df["id"]) == ["1", "2", "3"] and sorted(p.row for p in problems) == [2, 3]
    assert list(without_rows(df, problems)["id"]) == ["1"]
