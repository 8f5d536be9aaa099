"""Write short_texts.csv: 300 short documents on six topics, for the text notebook.

The documents are generated from hand-written sentence templates (no
download, no external corpus), deterministically:

    python notebooks/data/make_corpus.py
"""

import csv
import os
import random

TOPICS = {
    "cooking": {
        "templates": [
            "Simmer the {food} with {spice} for {minutes} minutes before serving.",
            "This {dish} recipe needs fresh {food} and a pinch of {spice}.",
            "Roast the {food} in a hot oven until golden, then season with {spice}.",
            "Our family {dish} is slow cooked with {food}, garlic and {spice}.",
            "Whisk the eggs, fold in the {food} and bake the {dish} for {minutes} minutes.",
            "A good {dish} starts with a sauce of tomatoes, onions and {spice}.",
            "Chop the {food} finely and fry it in olive oil with {spice}.",
            "Serve the {dish} warm with bread and a salad of {food}.",
        ],
        "food": [
            "lentils",
            "chickpeas",
            "mushrooms",
            "carrots",
            "potatoes",
            "aubergine",
            "spinach",
            "chicken",
            "salmon",
            "pumpkin",
            "rice",
            "noodles",
        ],
        "spice": [
            "cumin",
            "paprika",
            "oregano",
            "thyme",
            "cinnamon",
            "black pepper",
            "coriander",
            "chili flakes",
            "rosemary",
            "turmeric",
        ],
        "dish": [
            "stew",
            "curry",
            "soup",
            "risotto",
            "pie",
            "casserole",
            "omelette",
            "lasagna",
            "tagine",
            "stir fry",
        ],
        "minutes": ["ten", "twenty", "thirty", "forty", "forty five"],
    },
    "astronomy": {
        "templates": [
            "The telescope observed {object} in the {constellation} constellation last night.",
            "Astronomers measured the distance to {object} using {method}.",
            "A new image of {object} shows {feature} in remarkable detail.",
            "The space probe sent data about {feature} on {planet} back to Earth.",
            "Light from {object} takes millions of years to reach our telescope.",
            "Scientists detected {feature} near {object} with {method}.",
            "On clear nights you can see {planet} rise above {constellation}.",
            "The orbit of {planet} was computed from years of {method}.",
        ],
        "object": [
            "a distant galaxy",
            "a supernova remnant",
            "a binary star",
            "the Andromeda galaxy",
            "a young star cluster",
            "a quasar",
            "a neutron star",
            "a comet",
            "an exoplanet",
            "a nebula",
        ],
        "constellation": [
            "Orion",
            "Cassiopeia",
            "Cygnus",
            "Lyra",
            "Perseus",
            "Scorpius",
            "Taurus",
            "Andromeda",
        ],
        "method": [
            "parallax",
            "redshift measurements",
            "radio observations",
            "infrared spectroscopy",
            "gravitational lensing",
            "transit photometry",
        ],
        "feature": [
            "dust clouds",
            "ice volcanoes",
            "magnetic storms",
            "a thin atmosphere",
            "dark spots",
            "jets of gas",
            "ring systems",
            "auroras",
        ],
        "planet": ["Jupiter", "Saturn", "Mars", "Venus", "Neptune", "Mercury"],
    },
    "football": {
        "templates": [
            "A striker of {team} scored twice in the {minute} minute to win the match.",
            "After a goalless first half, {team} won the {competition} game on penalties.",
            "The coach of {team} praised the defence after the {competition} match.",
            "A red card for the {position} changed the game against {team}.",
            "Fans of {team} celebrated the {competition} title in the stadium.",
            "The {position} saved a penalty in the {minute} minute of extra time.",
            "{team} signed a young {position} before the {competition} season.",
            "The referee awarded a free kick to {team} just outside the box.",
        ],
        "team": [
            "the home side",
            "the visitors",
            "United",
            "City",
            "Rovers",
            "Athletic",
            "the champions",
            "the national team",
        ],
        "competition": ["league", "cup", "championship", "derby", "qualifying", "friendly"],
        "position": ["goalkeeper", "midfielder", "defender", "winger", "captain", "substitute"],
        "minute": ["fifth", "twentieth", "last", "ninetieth", "final", "opening"],
    },
    "programming": {
        "templates": [
            "The {language} function returns a list after sorting the {structure}.",
            "Write a unit test before you refactor the {structure} code in {language}.",
            "The compiler reported a type error in the {language} module.",
            "Use a {structure} to look up keys in constant time in {language}.",
            "The bug was a race condition between two threads updating the {structure}.",
            "Profile the {language} program before optimising the {structure} loop.",
            "The pull request adds {tool} checks to the {language} build.",
            "Run {tool} on every commit so the {language} code stays clean.",
        ],
        "language": ["Python", "Rust", "Java", "C++", "JavaScript", "Go", "Haskell"],
        "structure": [
            "hash table",
            "linked list",
            "binary tree",
            "queue",
            "array",
            "graph",
            "heap",
            "cache",
        ],
        "tool": [
            "linter",
            "formatter",
            "continuous integration",
            "type checker",
            "code coverage",
            "benchmark",
        ],
    },
    "gardening": {
        "templates": [
            "Plant the {plant} seedlings in {season} once the soil is warm.",
            "Water the {plant} deeply twice a week and mulch with {material}.",
            "Prune the {plant} in late {season} to encourage new growth.",
            "Our vegetable garden grows {plant} and {plant2} in raised beds.",
            "Add {material} to the compost heap to feed the {plant} next {season}.",
            "Slugs ate the young {plant} leaves after the rain.",
            "Sow {plant2} seeds in pots on the windowsill in early {season}.",
            "The {plant} flowered all {season} in the sunny corner of the garden.",
        ],
        "plant": [
            "tomato",
            "rose",
            "lettuce",
            "bean",
            "strawberry",
            "lavender",
            "apple tree",
            "courgette",
            "sunflower",
            "raspberry",
        ],
        "plant2": ["basil", "parsley", "peas", "radishes", "onions", "kale", "marigolds"],
        "season": ["spring", "summer", "autumn", "winter"],
        "material": ["straw", "bark chips", "leaf mould", "grass clippings", "manure", "wood ash"],
    },
    "finance": {
        "templates": [
            "Put part of your salary into a {account} every month.",
            "The bank raised the interest rate on {account} deposits by {percent} percent.",
            "Inflation of {percent} percent reduces the value of cash savings.",
            "A diversified {investment} lowers the risk of your savings.",
            "Pay off the {debt} with the highest interest rate first.",
            "The pension fund moved money from {investment} into bonds.",
            "Check the fees before you open a {account} or buy an {investment}.",
            "A monthly budget helps you repay the {debt} and save for a {goal}.",
        ],
        "account": [
            "savings account",
            "pension account",
            "current account",
            "fixed deposit",
            "retirement account",
        ],
        "percent": ["two", "three", "four", "five", "one and a half"],
        "investment": [
            "index fund",
            "stock portfolio",
            "bond fund",
            "mutual fund",
            "property fund",
        ],
        "debt": ["credit card balance", "car loan", "student loan", "mortgage", "overdraft"],
        "goal": ["house deposit", "holiday", "new car", "rainy day fund", "wedding"],
    },
}


def fill(template, vocabulary, rng):
    """The template with each slot filled by a random word of its list."""
    slots = {name: rng.choice(words) for name, words in vocabulary.items() if name != "templates"}
    return template.format(**slots)


def documents(per_topic=50, seed=0):
    """(topic, text) pairs: three sentences of one topic each, shuffled."""
    rng = random.Random(seed)
    rows = []
    for topic, vocabulary in TOPICS.items():
        for _ in range(per_topic):
            sentences = rng.sample(vocabulary["templates"], 3)
            rows.append((topic, " ".join(fill(t, vocabulary, rng) for t in sentences)))
    rng.shuffle(rows)
    return rows


def main():
    """Write the CSV next to this script."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "short_texts.csv")
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "topic", "text"])
        for index, (topic, text) in enumerate(documents()):
            writer.writerow([index, topic, text])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
