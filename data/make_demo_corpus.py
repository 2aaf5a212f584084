"""Writes data/demo_corpus.txt, the project's own English demo corpus.

One sentence per line, documents separated by blank lines (the pretraining input format). Each
document follows one person in one town through a few topics, so its sentences share names and
vocabulary: that gives next-sentence prediction something to learn (a random next sentence usually
comes from another person and town) and masked-LM regular patterns to pick up. Deterministic: the
same seed writes the same file.

    python data/make_demo_corpus.py [--documents 700] [--seed 7] [--output data/demo_corpus.txt]
"""
import argparse
import os
import random

FIRST = ("Ada Bela Carl Dora Emil Fenna Gus Hana Ivo Jana Kurt Lena Milo Nora Otto Pia Rui Sara "
         "Tom Una Vik Wren Yara Zeno Alma Bruno Cleo Dario Elsa Finn Greta Hugo Iris Jonas Kira "
         "Luca Mara Nils Olga Paul").split()
TOWNS = ("Ashford Brookvale Cedarholm Dunmore Eastwick Fairhaven Glenrock Harrowgate Ivybridge "
         "Juniper Kingsmere Larkspur Millbrook Northcliff Oakhurst Pinecrest Queensbury Riverton "
         "Stonegate Thornbury Umberley Valewood Westmoor Yarrow").split()
TRADES = {
    "baker": ("bread", "ovens", "flour", "loaves", "the early morning"),
    "carpenter": ("tables", "saws", "timber", "chairs", "the workshop"),
    "teacher": ("lessons", "books", "chalk", "pupils", "the classroom"),
    "fisher": ("nets", "boats", "the tide", "herring", "the harbour"),
    "gardener": ("roses", "spades", "seeds", "hedges", "the greenhouse"),
    "doctor": ("patients", "medicine", "the clinic", "fevers", "the night shift"),
    "painter": ("portraits", "brushes", "canvas", "colours", "the studio"),
    "farmer": ("wheat", "tractors", "the barn", "sheep", "the harvest"),
    "potter": ("bowls", "clay", "the kiln", "glazes", "the wheel"),
    "musician": ("songs", "violins", "the orchestra", "concerts", "rehearsals"),
}
WEATHER = ("rain", "snow", "fog", "sunshine", "wind", "frost", "thunder", "drizzle")
SEASONS = ("spring", "summer", "autumn", "winter")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FOODS = ("soup", "apples", "cheese", "pancakes", "stew", "plums", "rice", "porridge", "pie")
PLACES = ("the market", "the river", "the library", "the station", "the old bridge", "the park",
          "the hill", "the square", "the mill", "the lighthouse")
FEELINGS = ("happy", "tired", "proud", "curious", "calm", "worried", "cheerful", "restless")
COLOURS = ("red", "blue", "green", "yellow", "grey", "white", "brown", "orange")


def introduce(r, p):
    return [
        f"{p['name']} lives in {p['town']}, a small town near {p['near']}.",
        f"{p['name']} works as a {p['trade']} in {p['town']}.",
        f"Everyone in {p['town']} knows {p['name']} the {p['trade']}.",
        f"In {p['town']} there is a {p['trade']} called {p['name']}.",
    ][r.randrange(4)]


def about_work(r, p):
    a, b, c, d, e = TRADES[p["trade"]]
    return r.choice([
        f"As a {p['trade']}, {p['name']} spends most days with {a} and {b}.",
        f"The work needs {c}, and {p['name']} always checks the {c} first.",
        f"{p['name']} says that {d} are the hardest part of the job.",
        f"Most of the work happens in {e}.",
        f"Last {r.choice(SEASONS)}, {p['name']} bought new {b} for the work.",
        f"People come from {p['near']} to see the {a} that {p['name']} makes.",
        f"On {r.choice(DAYS)} the {p['trade']} starts work before six o'clock.",
    ])


def about_day(r, p):
    place, food = r.choice(PLACES), r.choice(FOODS)
    return r.choice([
        f"On {r.choice(DAYS)} {p['name']} walked to {place} in the {r.choice(WEATHER)}.",
        f"After work, {p['name']} often eats {food} with {p['friend']}.",
        f"{p['friend']} and {p['name']} met at {place} to talk about the {r.choice(SEASONS)}.",
        f"The {r.choice(WEATHER)} kept {p['name']} at home for two days.",
        f"{p['name']} felt {r.choice(FEELINGS)} when {p['friend']} came to visit.",
        f"In the evening {p['name']} reads by the {r.choice(COLOURS)} lamp.",
        f"{p['name']} painted the door of the house {r.choice(COLOURS)} this {r.choice(SEASONS)}.",
        f"Every {r.choice(DAYS)} there is {food} for lunch at {place}.",
    ])


def about_town(r, p):
    return r.choice([
        f"{p['town']} has {r.randint(2, 9)} bridges and a busy market.",
        f"The road from {p['town']} to {p['near']} is long and narrow.",
        f"In {r.choice(SEASONS)}, {p['town']} is known for its {r.choice(WEATHER)}.",
        f"Many people in {p['town']} work near {r.choice(PLACES)}.",
        f"The mayor of {p['town']} wants a new school by {r.choice(PLACES)}.",
        f"Visitors to {p['town']} like to see {r.choice(PLACES)}.",
    ])


def closing(r, p):
    return r.choice([
        f"{p['name']} hopes to stay in {p['town']} for many more years.",
        f"Next year {p['name']} plans to visit {p['near']} with {p['friend']}.",
        f"For {p['name']}, being a {p['trade']} in {p['town']} is a good life.",
        f"{p['friend']} thinks {p['name']} is the best {p['trade']} in {p['town']}.",
    ])


def document(r):
    town, near = r.sample(TOWNS, 2)
    name, friend = r.sample(FIRST, 2)
    p = dict(name=name, friend=friend, town=town, near=near, trade=r.choice(sorted(TRADES)))
    sentences = [introduce(r, p)]
    for _ in range(r.randint(4, 12)):
        sentences.append(r.choice((about_work, about_day, about_town))(r, p))
    sentences.append(closing(r, p))
    return sentences


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=700)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__),
                                                         "demo_corpus.txt"))
    args = parser.parse_args()
    r = random.Random(args.seed)
    text = "\n\n".join("\n".join(document(r)) for _ in range(args.documents)) + "\n"
    tmp = args.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, args.output)
    print(f"wrote {args.output}: {args.documents} documents, {len(text.encode()) / 1e3:.0f} KB")


if __name__ == "__main__":
    main()
