"""SoC ids as phones report them (``ro.soc.model``, ``ro.board.platform``) -> the names users know.

``getprop ro.soc.model`` says ``SM8250`` and ``ro.board.platform`` says ``kona`` where a user says "Snapdragon 865".
The table holds the paper's device (Snapdragon 865) and the flagships and common mid-range parts since; an id that is
not in it is kept as it is (:func:`soc_name` returns None and the probe records the raw id).
"""

from __future__ import annotations

import re

# Part numbers (ro.soc.model, Android 12+) and board platform code names (ro.board.platform), lower case.
SOC_NAMES = {
    # Qualcomm
    "msm8996": "Snapdragon 820",
    "msm8998": "Snapdragon 835",
    "sdm660": "Snapdragon 660",
    "sdm710": "Snapdragon 710",
    "sdm845": "Snapdragon 845",
    "sm7150": "Snapdragon 730",
    "sm8150": "Snapdragon 855",
    "msmnile": "Snapdragon 855",
    "sm8250": "Snapdragon 865",
    "kona": "Snapdragon 865",
    "sm7250": "Snapdragon 765G",
    "lito": "Snapdragon 765G",
    "sm8350": "Snapdragon 888",
    "lahaina": "Snapdragon 888",
    "sm7325": "Snapdragon 778G",
    "yupik": "Snapdragon 778G",
    "sm6375": "Snapdragon 695",
    "sm8450": "Snapdragon 8 Gen 1",
    "taro": "Snapdragon 8 Gen 1",
    "sm8475": "Snapdragon 8+ Gen 1",
    "sm7450": "Snapdragon 7 Gen 1",
    "sm8550": "Snapdragon 8 Gen 2",
    "kalama": "Snapdragon 8 Gen 2",
    "sm7475": "Snapdragon 7+ Gen 2",
    "sm8650": "Snapdragon 8 Gen 3",
    "pineapple": "Snapdragon 8 Gen 3",
    "sm8635": "Snapdragon 8s Gen 3",
    "sm8750": "Snapdragon 8 Elite",
    "sun": "Snapdragon 8 Elite",
    # MediaTek
    "mt6877": "Dimensity 900",
    "mt6891": "Dimensity 1100",
    "mt6893": "Dimensity 1200",
    "mt6895": "Dimensity 8100",
    "mt6896": "Dimensity 8200",
    "mt6983": "Dimensity 9000",
    "mt6985": "Dimensity 9200",
    "mt6989": "Dimensity 9300",
    "mt6991": "Dimensity 9400",
    "mt6785": "Helio G90T",
    # Samsung
    "exynos9820": "Exynos 9820",
    "exynos990": "Exynos 990",
    "exynos2100": "Exynos 2100",
    "s5e9925": "Exynos 2200",
    "exynos2200": "Exynos 2200",
    "s5e9945": "Exynos 2400",
    "exynos2400": "Exynos 2400",
    "s5e8835": "Exynos 1380",
    "s5e8845": "Exynos 1480",
    # Google
    "gs101": "Google Tensor",
    "gs201": "Google Tensor G2",
    "zuma": "Google Tensor G3",
    "zumapro": "Google Tensor G4",
}


def _keys(raw: str):
    """Lookup keys of one reported id, most specific first: 'SM8250-AB' -> sm8250-ab, sm8250; 'MT6985V/CD' -> mt6985."""
    text = raw.strip().lower()
    text = re.sub(r"^(qualcomm|qcom|mediatek|samsung|google)[\s,]+", "", text)
    yield text
    head = re.match(r"[a-z]+\d+[a-z]*", text)
    if head:
        yield head.group(0)
        digits = re.match(r"[a-z]+\d+", text)
        if digits:
            yield digits.group(0)


def soc_name(*ids: str | None) -> str | None:
    """The marketing name of the first id the table knows (ids in order of trust), else None."""
    for raw in ids:
        if not raw:
            continue
        for key in _keys(raw):
            if key in SOC_NAMES:
                return SOC_NAMES[key]
    return None
