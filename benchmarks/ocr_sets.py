"""Build the OCR benchmark sets (never committed): screenshots rendered in real Chromium, signs drawn
onto COCO photos in perspective, and pages photographed at an angle; plus 12 MP photos.

    python benchmarks/ocr_sets.py [--out /tmp/mmembed-bench/ocr] [--count 12] [--seed 7] [--zh-pool small|large]

Each set is a folder of images and a ``truth.jsonl``: one line per image with its file name,
language and the words a search must find (English words and codes; Chinese phrases). The
words come from pools drawn with a fixed seed; nothing here was tuned on the reported results.
Needs playwright with Debian's chromium and a CJK font (``apt-get install fonts-wqy-zenhei``).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parent.parent
COCO = ROOT.parent / "shared" / "data" / "photos" / "coco"
CJK_FONT = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
EN = ("invoice payment delivery meeting schedule account balance transfer weather forecast "
      "station platform departure arrival ticket museum garden library hospital pharmacy "
      "parking entrance exit bakery coffee market harbour tunnel bridge battery settings "
      "network password profile message calendar reminder document contract quarterly").split()
ZH = ("会议纪要 第三季度 预算报告 火车站 出口 入口 停车场 医院 图书馆 博物馆 咖啡店 超市 "
      "天气预报 明天下雨 付款成功 订单号 快递单 银行转账 电子发票 通知 安全出口 禁止吸烟 "
      "营业时间 欢迎光临 北京路 人民广场 地铁站 售票处 候车室 洗手间").split()
# ``--zh-pool large``: everyday phrases of phone screens, added so that two Chinese pictures share
# few phrases, as two English ones share few codes (with the 31 above, a picture's 18 phrases are
# mostly shown by others too, and a query naming them is ambiguous). Added 2026-12-06, before any
# set drawn with them was read.
ZH_MORE = ("登机牌 航班号 座位号 登机口 行李提取 酒店预订 入住时间 退房时间 房间号码 早餐时间 "
           "无线网络 网络密码 充电宝 手机号码 验证码 身份证号 护照号码 收货地址 联系电话 退款申请 "
           "物流信息 已签收 待发货 优惠券 会员积分 购物车 立即购买 确认订单 支付宝 微信支付 "
           "余额不足 账单明细 信用卡还款 工资到账 水费账单 电费缴纳 燃气公司 物业通知 停水通知 "
           "电梯维修 垃圾分类 小区门禁 快递柜 取件码 外卖订单 配送中 骑手电话 预计送达 门诊挂号 "
           "检查报告 处方单 药品说明 用法用量 体检中心 疫苗接种 健康码 核酸检测 体温正常 请戴口罩 "
           "课程表 期末考试 成绩单 作业提交 家长会 报名截止 录取通知 学生证 教学楼 实验室 "
           "项目进度 周报模板 客户名单 合同编号 报价单 采购清单 库存盘点 发货单 出差申请 报销单 "
           "年假申请 加班记录 团建活动 年终总结 述职报告 招聘启事 面试时间 入职手续 劳动合同 社保缴纳 "
           "公积金 个人所得税 房屋租赁 押金收据 装修报价 家具清单 二手交易 自行车道 公交线路 末班车 "
           "高速公路 收费站 加油站 服务区 限速八十 前方施工 单行道 禁止停车 临时停车 减速慢行 "
           "营业执照 卫生许可证 今日特价 买一送一 新品上市 限时折扣 会员专享 免费试吃 打包带走 堂食").split()
ZH_POOL = ZH  # what ``_lines`` draws from (``--zh-pool``)


def _code(rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    return f"{rng.choice(letters)}{rng.choice(letters)}-{rng.randint(100, 999)}-{rng.choice(letters)}{rng.choice(letters)}"


def _lines(rng: random.Random, lang: str, n: int) -> tuple[list[str], list[str]]:
    """``n`` lines of text and the words in them a search must find."""
    lines, words = [], []
    for _ in range(n):
        if lang == "en":
            picked = rng.sample(EN, 4)
            code = _code(rng) if rng.random() < 0.4 else ""
            lines.append(" ".join(w.capitalize() if i == 0 else w for i, w in enumerate(picked)) + (f" {code}" if code else ""))
            words += picked + ([code] if code else [])
        else:
            picked = rng.sample(ZH_POOL, 3)
            lines.append("，".join(picked) if rng.random() < 0.5 else "".join(picked))
            words += picked
    return lines, words


def screenshots(out: Path, count: int, rng: random.Random) -> list[dict]:
    """Phone (390x844) and desktop (1280x800) pages, light and dark, English and Chinese."""
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        for i in range(count):
            device, theme, lang = ("phone", "desktop")[i % 2], ("light", "dark")[i // 2 % 2], ("en", "zh")[i // 4 % 2]
            width, height, size = (390, 844, 16) if device == "phone" else (1280, 800, 15)
            bg, fg = ("#ffffff", "#1f2328") if theme == "light" else ("#0d1117", "#c9d1d9")
            lines, words = _lines(rng, lang, 6)
            items = "".join(f"<li style='margin:10px 0'>{t}</li>" for t in lines[1:])
            html = (f"<html><body style='margin:0;font:{size}px sans-serif;background:{bg};color:{fg}'>"
                    f"<div style='background:#2f81f7;color:white;padding:14px;font-size:{size + 4}px'>{lines[0]}</div>"
                    f"<ul style='padding:16px 28px'>{items}</ul></body></html>")
            page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=2 if device == "phone" else 1)
            page.set_content(html)
            name = f"shot{i:02d}-{device}-{theme}-{lang}.png"
            page.screenshot(path=str(out / name))
            page.close()
            rows.append({"file": name, "lang": lang, "words": words})
        browser.close()
    return rows


def _perspective(image: Image.Image, rng: random.Random, skew: float) -> tuple[Image.Image, list[float]]:
    """``image`` warped as if seen at an angle: its corners move inward by up to ``skew`` of a
    side, so nothing is cut off. Returns it and the PIL perspective coefficients."""
    w, h = image.size
    j = [rng.uniform(0, skew) for _ in range(8)]
    quad = [(j[0] * w, j[1] * h), (w - j[2] * w, j[3] * h), (w - j[4] * w, h - j[5] * h), (j[6] * w, h - j[7] * h)]
    corners = [(0, 0), (w, 0), (w, h), (0, h)]
    matrix = []  # PIL maps each output pixel (u, v) back to an input pixel (x, y)
    for (u, v), (x, y) in zip(quad, corners):
        matrix.append([u, v, 1, 0, 0, 0, -x * u, -x * v])
        matrix.append([0, 0, 0, u, v, 1, -y * u, -y * v])
    coeffs = np.linalg.solve(np.array(matrix, float), np.array([c for p in corners for c in p], float))
    return image.transform((w, h), Image.Transform.PERSPECTIVE, coeffs.tolist(), Image.Resampling.BICUBIC), coeffs.tolist()


def signs(out: Path, count: int, rng: random.Random) -> list[dict]:
    """A sign (2-3 lines on a coloured plate) drawn in perspective onto a COCO photo."""
    photos = sorted(COCO.glob("*.jpg"))
    rows = []
    for i in range(count):
        lang = ("en", "zh")[i % 2]
        lines, words = _lines(rng, lang, 2 if lang == "en" else 2)
        words = words if lang == "zh" else [w for w in words if len(w) > 3 or "-" in w]
        photo = Image.open(rng.choice(photos)).convert("RGB")
        font = ImageFont.truetype(CJK_FONT, size=40)
        text_w = max(int(font.getlength(t)) for t in lines) + 60
        plate = Image.new("RGBA", (text_w, 60 * len(lines) + 40), rng.choice([(20, 90, 40), (20, 50, 140), (240, 240, 235), (200, 30, 30)]))
        draw = ImageDraw.Draw(plate)
        ink = (20, 20, 20) if plate.getpixel((0, 0))[0] > 200 else (255, 255, 255)
        for j, t in enumerate(lines):
            draw.text((30, 20 + 60 * j), t, font=font, fill=ink)
        scale = rng.uniform(0.55, 0.85) * photo.width / plate.width
        plate = plate.resize((int(plate.width * scale), int(plate.height * scale)), Image.Resampling.LANCZOS)
        pad = Image.new("RGBA", (plate.width + 40, plate.height + 40))
        pad.paste(plate, (20, 20))
        warped, _ = _perspective(pad, rng, 0.15)
        x = rng.randint(0, max(0, photo.width - warped.width))
        y = rng.randint(0, max(0, photo.height - warped.height))
        photo.paste(warped, (x, y), warped)
        photo = photo.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))
        name = f"sign{i:02d}-{lang}.jpg"
        photo.save(out / name, quality=88)
        rows.append({"file": name, "lang": lang, "words": words})
    return rows


def documents(out: Path, count: int, rng: random.Random) -> list[dict]:
    """A page rendered in Chromium, warped as if photographed at an angle on a desk, with noise and blur."""
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1000, "height": 1300})
        for i in range(count):
            lang = ("en", "zh")[i % 2]
            lines, words = _lines(rng, lang, 9)
            body = "".join(f"<p>{t}</p>" for t in lines[1:])
            page.set_content(f"<html><body style='margin:70px;font:26px serif'><h2>{lines[0]}</h2>{body}</body></html>")
            shot = out / f"_page{i:02d}.png"
            page.screenshot(path=str(shot))
            sheet = Image.open(shot).convert("RGBA")
            shot.unlink()
            desk = Image.new("RGB", (1400, 1600), tuple(rng.randint(60, 140) for _ in range(3)))
            warped, _ = _perspective(sheet, rng, 0.15)
            desk.paste(warped, (200, 150), warped)
            array = np.asarray(desk).astype(np.float32)
            shade = np.linspace(rng.uniform(0.7, 0.9), 1.05, desk.width)[None, :, None]  # uneven light
            noisy = array * shade + np.random.default_rng(i).normal(0, 8, array.shape)
            photo = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.2)))
            name = f"doc{i:02d}-{lang}.jpg"
            photo.save(out / name, quality=85)
            rows.append({"file": name, "lang": lang, "words": words})
        browser.close()
    return rows


def twelve_mp(out: Path, count: int) -> None:
    """COCO photos upscaled to 4000x3000 (12 MP) JPEGs, for per-photo cost at phone size."""
    for path in sorted(COCO.glob("*.jpg"))[:count]:
        Image.open(path).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC).save(out / path.name, quality=92)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/mmembed-bench/ocr"))
    parser.add_argument("--count", type=int, default=12, help="images per text set")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--zh-pool", choices=["small", "large"], default="small",
                        help="Chinese phrases drawn from the 31 of ZH, or with ZH_MORE too")
    args = parser.parse_args()
    global ZH_POOL
    ZH_POOL = ZH + (ZH_MORE if args.zh_pool == "large" else [])
    rng = random.Random(args.seed)
    for name, build in (("screenshots", screenshots), ("signs", signs), ("documents", documents)):
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        rows = build(folder, args.count, rng)
        (folder / "truth.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        print(f"{folder}: {len(rows)} images")
    (args.out / "photos-12mp").mkdir(parents=True, exist_ok=True)
    twelve_mp(args.out / "photos-12mp", 6)
    print(f"{args.out / 'photos-12mp'}: 6 images")


if __name__ == "__main__":
    main()
