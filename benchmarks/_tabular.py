"""Real tabular data sets that ship inside installable packages, for the drop-in run.

Each loader returns ``(X, y, task, source)``: X float64 with the rows that have
a missing value dropped, y the target a downstream model predicts ("class" or
"regression"), and where the data came from. Nothing is downloaded: sets from
packages that are not installed are skipped by the caller (``ImportError``).
"""

import numpy as np


def _frame(df, target, drop=()):
    df = df.drop(columns=list(drop)).dropna()
    y = df.pop(target).to_numpy()
    X = df.select_dtypes("number").to_numpy(dtype=np.float64)
    return X, y


def wine():
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    return X, y, "class", "sklearn.datasets.load_wine"


def breast_cancer():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    return X, y, "class", "sklearn.datasets.load_breast_cancer"


def diabetes():
    from sklearn.datasets import load_diabetes

    # scaled=False: the raw measurements, in their own units.
    X, y = load_diabetes(return_X_y=True, scaled=False)
    return X, y, "regression", "sklearn.datasets.load_diabetes(scaled=False)"


def penguins():
    from palmerpenguins import load_penguins

    X, y = _frame(load_penguins(), "species", drop=("year",))
    return X, y, "class", "palmerpenguins.load_penguins"


def cars():
    from vega_datasets import data

    df = data.cars().drop(columns=["Name", "Year"])
    X, y = _frame(df, "Origin")
    return X, y, "class", "vega_datasets.data.cars"


def _statsmodels(name, target, drop=(), task="regression"):
    import statsmodels.api as sm

    df = getattr(sm.datasets, name).load_pandas().data
    X, y = _frame(df, target, drop=drop)
    return X, y, task, f"statsmodels.datasets.{name}"


def anes96():
    # Party identification (7 levels) from age, education, income, ...
    return _statsmodels("anes96", "PID", drop=("vote",), task="class")


def fair():
    # Affairs per year from a 1974 survey; the first 2,000 rows.
    X, y, task, source = _statsmodels("fair", "affairs")
    return X[:2000], y[:2000], task, source + " (first 2,000 rows)"


def star98():
    # California schools: students above the national median in maths.
    return _statsmodels("star98", "NABOVE", drop=("NBELOW",))


def macrodata():
    # US macroeconomic series, quarterly; real investment as the target.
    return _statsmodels("macrodata", "realinv", drop=("year", "quarter"))


def modechoice():
    # Travel mode choice; the chosen alternative's flag as the target.
    return _statsmodels(
        "modechoice", "choice", drop=("individual", "mode"), task="class"
    )


def swiss_roll():
    from sklearn.datasets import make_swiss_roll

    X, t = make_swiss_roll(1000, noise=0.05, random_state=0)
    return X, t, "regression", "sklearn.datasets.make_swiss_roll(1000, noise=0.05)"


def s_curve():
    from sklearn.datasets import make_s_curve

    X, t = make_s_curve(1000, noise=0.05, random_state=0)
    return X, t, "regression", "sklearn.datasets.make_s_curve(1000, noise=0.05)"


LOADERS = {
    "wine": wine,
    "breast_cancer": breast_cancer,
    "diabetes": diabetes,
    "penguins": penguins,
    "cars": cars,
    "anes96": anes96,
    "fair": fair,
    "star98": star98,
    "macrodata": macrodata,
    "modechoice": modechoice,
    "swiss_roll": swiss_roll,
    "s_curve": s_curve,
}
