"""Writes data/demo_tagging/, a small named-entity set in the project's English (CoNLL layout).

People (PER: a first name, sometimes with a surname), towns (LOC) and organisations (ORG: a town
and a kind, "Riverton Rowing Club", or "Bank of Riverton") in sentences like the demo corpus's
(data/make_demo_corpus.py, whose names and towns it uses). A town's name inside an organisation's
is part of the ORG, so the type follows from the context, not from the word. Tags are IOB2.

Files: train.txt, dev.txt and test.txt, one `word tag` line per word, a blank line after each
sentence and a `-DOCSTART- O` line before each document of 3-8 sentences (as CoNLL-2003). Train
sentences use the first 30 first names, the first 18 towns and the first 24 surnames; dev and
test sentences use all 40, 24 and 32, so that a third of their people (a first name or a surname)
and a quarter of their towns never occur in training: a model must read the context rather than
remember names.

Deterministic: the same seed and sizes write the same files.

    python data/make_demo_tagging.py [--seed 19] [--train 400 --dev 150 --test 150]
        [--output_dir data/demo_tagging]
"""
import argparse
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_demo_corpus as corpus  # noqa: E402

SURNAMES = ("Moss Fletcher Hale Quill Barrow Thorne Ashby Marsh Pike Reed Cole Hart Frost Lane "
            "Brook Carver Dale Ellery Fenwick Garner Hollis Ingram Jarvis Keel Lowell Mercer "
            "Nash Orme Pryor Radley Sutton Tolley").split()
ORG_KINDS = ("Rowing Club", "Gazette", "Bakers Guild", "Savings Bank", "Football Club",
             "Library Trust", "Fishing Company", "Choir", "Theatre Company", "Chess Society")
UNSEEN = {"first": 10, "towns": 6, "surnames": 8}  # held out of training, at the lists' ends
TEMPLATES = (
    "{per} lives in {loc} , a small town near {loc2} .",
    "{per} works as a {trade} for the {org} .",
    "The {org} opened a new office in {loc} on {day} .",
    "{per} and {per2} met at {place} to talk about the {org} .",
    "Everyone in {loc} knows {per} the {trade} .",
    "On {day} {per} walked to {place} in the {weather} .",
    "The mayor of {loc} wants the {org} to build a new school .",
    "After work , {per} often eats {food} with {per2} .",
    "The road from {loc} to {loc2} is long and narrow .",
    "{per} says that the {org} is the best in {loc} .",
    "In {season} , {loc} is known for its {weather} .",
    "Last {season} , {per} joined the {org} .",
    "{per} wrote to {per2} from {loc} about the {weather} .",
    "People come from {loc2} to see the {org} .",
    "The {org} gave {per} a prize for the best {food} .",
    "{per} moved from {loc} to {loc2} in {season} .",
    "The {weather} kept everyone at home for two days .",
    "Every {day} there is {food} for lunch at {place} .",
)


def names(split):
    """(first names, towns, surnames) a split draws from: train lacks the UNSEEN ones."""
    lists = (corpus.FIRST, corpus.TOWNS, SURNAMES)
    if split != "train":
        return lists
    return tuple(values[:-UNSEEN[key]] for values, key in zip(lists, ("first", "towns",
                                                                          "surnames")))


def entity(r, kind, pool):
    """(words, type) of one person, town or organisation."""
    first, towns, surnames = pool
    if kind == "per":
        words = [r.choice(first)] + ([r.choice(surnames)] if r.random() < 0.4 else [])
        return words, "PER"
    if kind == "loc":
        return [r.choice(towns)], "LOC"
    if r.random() < 0.2:
        return ["Bank", "of", r.choice(towns)], "ORG"
    return [r.choice(towns)] + r.choice(ORG_KINDS).split(), "ORG"


def sentence(r, pool):
    """[(word, tag)] of one sentence from a random template (IOB2 tags)."""
    plain = dict(trade=r.choice(sorted(corpus.TRADES)), day=r.choice(corpus.DAYS),
                 place=r.choice(corpus.PLACES), weather=r.choice(corpus.WEATHER),
                 food=r.choice(corpus.FOODS), season=r.choice(corpus.SEASONS))
    out, used = [], set()
    for word in r.choice(TEMPLATES).split():
        slot = word[1:-1] if word.startswith("{") else None
        if slot in plain:
            out += [(w, "O") for w in plain[slot].split()]
        elif slot:
            words, type_ = entity(r, slot.rstrip("2"), pool)
            while " ".join(words) in used:   # two slots of a kind name two different ones
                words, type_ = entity(r, slot.rstrip("2"), pool)
            used.add(" ".join(words))
            out += [(w, ("B-" if i == 0 else "I-") + type_) for i, w in enumerate(words)]
        else:
            out.append((word, "O"))
    return out


def write_split(path, r, split, count):
    """`count` sentences in documents of 3-8, CoNLL layout, written under a temporary name."""
    pool = names(split)
    lines, written = [], 0
    while written < count:
        lines += ["-DOCSTART- O", ""]
        for _ in range(min(r.randint(3, 8), count - written)):
            lines += [f"{word} {tag}" for word, tag in sentence(r, pool)] + [""]
            written += 1
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    entities = sum(line.split()[1].startswith("B-") for line in lines if " " in line)
    print(f"wrote {path}: {count} sentences, {entities} entities")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--train", type=int, default=400, help="training sentences")
    parser.add_argument("--dev", type=int, default=150, help="dev sentences")
    parser.add_argument("--test", type=int, default=150, help="test sentences")
    parser.add_argument("--output_dir", default=os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "demo_tagging"))
    args = parser.parse_args()
    r = random.Random(args.seed)
    os.makedirs(args.output_dir, exist_ok=True)
    for split in ("train", "dev", "test"):
        write_split(os.path.join(args.output_dir, f"{split}.txt"), r, split,
                    getattr(args, split))


if __name__ == "__main__":
    main()
