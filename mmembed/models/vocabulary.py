"""The built-in label set for zero-shot tags: everyday photo concepts (places, nature,
animals, people and events, food, objects, vehicles, documents and screens)."""

from __future__ import annotations

__all__ = ["DEFAULT_LABELS", "TEMPLATES"]

# CLIP's zero-shot recipe: each label is embedded in several prompts and the prompt vectors
# averaged (a subset of the 80 ImageNet templates of the CLIP paper, for everyday photos).
TEMPLATES = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a good photo of a {}.",
    "a close-up photo of a {}.",
    "a blurry photo of a {}.",
    "a bright photo of a {}.",
    "a photo of my {}.",
)

_PLACES = """beach, mountain, forest, lake, river, waterfall, ocean, desert, field, meadow, garden, park,
playground, city street, city skyline, village, countryside, farm, vineyard, island, cave, cliff, canyon,
glacier, volcano, snow, swimming pool, harbor, bridge, tunnel, highway, road, railway station, airport,
subway, parking lot, market, shopping mall, supermarket, restaurant, cafe, bar, kitchen, living room,
bedroom, bathroom, office, classroom, library, museum, church, temple, castle, stadium, gym, hospital,
hotel room, construction site, factory, warehouse, campsite, ski slope, amusement park, zoo, aquarium,
stage, concert hall"""
_NATURE = """sunset, sunrise, night sky, stars, moon, clouds, rainbow, storm, fog, rain, autumn leaves,
flowers, tree, palm tree, cactus, grass, rocks, sand, waves, ice, fire, fireworks"""
_ANIMALS = """dog, puppy, cat, kitten, horse, cow, sheep, goat, pig, chicken, duck, goose, bird, parrot,
owl, eagle, seagull, pigeon, swan, fish, shark, dolphin, whale, turtle, frog, snake, lizard, butterfly,
bee, spider, insect, rabbit, squirrel, deer, bear, fox, wolf, lion, tiger, elephant, giraffe, zebra,
monkey, camel, kangaroo, penguin"""
_PEOPLE = """baby, child, group of people, crowd, couple, family, selfie, portrait, man, woman, old person,
teenager, wedding, birthday party, party, graduation, concert, festival, parade, protest, sports game,
soccer, basketball, tennis, baseball, golf, swimming, surfing, skiing, snowboarding, skateboarding,
cycling, running, hiking, climbing, fishing, camping, picnic, dancing, yoga, playing music, cooking,
reading, christmas, halloween, holiday"""
_FOOD = """food, breakfast, pizza, burger, sandwich, salad, soup, pasta, sushi, noodles, rice, bread, cake,
birthday cake, dessert, ice cream, chocolate, cookies, fruit, apple, banana, orange, strawberries,
vegetables, meat, barbecue, coffee, tea, wine, beer, cocktail, drink, juice"""
_OBJECTS = """car, truck, bus, motorcycle, bicycle, train, tram, airplane, helicopter, boat, sailboat, ship,
kayak, tractor, phone, laptop, computer, keyboard, television, camera, headphones, watch, clock, book,
books, newspaper, magazine, toy, teddy bear, doll, lego, ball, kite, balloon, umbrella, bag, backpack,
suitcase, shoes, hat, glasses, jewelry, ring, dress, shirt, furniture, chair, sofa, table, bed, lamp,
window, door, stairs, fence, bench, tent, guitar, piano, drum, violin, painting, sculpture, statue, flag,
christmas tree, candle, gift, bottle, cup, plate, knife, tools, plant, potted plant, vase, mirror"""
_DOCUMENTS = """receipt, invoice, document, letter, handwriting, whiteboard, blackboard, sign, poster,
menu, map, ticket, passport, id card, business card, credit card, form, calendar, chart, diagram,
screenshot, text message, web page, computer screen, code, spreadsheet, slide, presentation, meme,
comic, cartoon, drawing, sketch, logo, qr code, barcode, license plate"""
_STYLES = """black and white photo, aerial photo, underwater photo, macro photo, panorama, long exposure,
selfie with friends, food photo, product photo, architecture, interior, landscape, street photography,
night photo, blurry photo, dark photo, overexposed photo"""


def _split(block: str) -> list[str]:
    return [label.strip() for label in block.replace("\n", " ").split(",") if label.strip()]


DEFAULT_LABELS: tuple[str, ...] = tuple(dict.fromkeys(
    _split(_PLACES) + _split(_NATURE) + _split(_ANIMALS) + _split(_PEOPLE) + _split(_FOOD)
    + _split(_OBJECTS) + _split(_DOCUMENTS) + _split(_STYLES)))
