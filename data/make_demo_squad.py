"""Writes data/demo_squad/, a small SQuAD-format question-answering set in the project's English.

Each paragraph states 3-6 facts (town, trade, age, the day and place of a weekly visit, food, coat
colour, the year work began, the time of getting up) about one person and often a second one, in
varied sentence templates and a random order, so answers are not tied to a position and a question
about one person has a distractor fact about the other. Questions come in several kinds, each
phrased two or three ways; every answer is a span of its context (asserted here). About 15% of the
questions are unanswerable (SQuAD 2.0 "is_impossible"): they ask about a fact the paragraph does not
give for that person, often one it gives for the other person. --no_impossible leaves those out
and writes SQuAD 1.1-style files (version "1.1", no is_impossible keys); the answerable questions
are the same either way.

Names come from data/make_demo_corpus.py. Train paragraphs use the first 30 first names, dev ones
only the last 10, so dev people never occur in train and a model must read rather than remember.
Contexts stay under 70 words, so question and context fit one 128-token window.

Deterministic: the same seed and sizes write the same files.

    python data/make_demo_squad.py [--seed 31] [--train 100 --dev 30] [--questions 4]
        [--no_impossible] [--output_dir data/demo_squad]
"""
import argparse
import json
import os
import random
import string
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_demo_corpus as corpus  # noqa: E402

DEV_NAMES = 10
MAX_WORDS = 70
IMPOSSIBLE_SHARE = 0.15
TRADES = sorted(corpus.TRADES)
TIMES = tuple(f"{h} o'clock" for h in range(5, 12))
VALUES = {"town": corpus.TOWNS, "trade": TRADES, "age": [str(a) for a in range(19, 81)],
          "day": corpus.DAYS, "place": corpus.PLACES, "food": corpus.FOODS,
          "colour": corpus.COLOURS, "year": [str(y) for y in range(1960, 2016)], "time": TIMES}
# Sentence templates by the facts they state; {near} and {season} are never asked about.
SENTENCES = {
    ("town",): ["{name} lives in {town}.", "{name} has a small house in {town}.",
                "The home of {name} is in {town}, not far from {near}."],
    ("trade",): ["{name} works as a {trade}.", "By trade, {name} is a {trade}.",
                 "People know {name} as the local {trade}."],
    ("town", "trade"): ["{name} works as a {trade} in {town}.",
                        "In {town} there is a {trade} called {name}."],
    ("age",): ["{name} is {age} years old.", "{name} turned {age} last {season}."],
    ("age", "trade"): ["{name}, a {trade} of {age}, is rarely ill."],
    ("day", "place"): ["Every {day}, {name} visits {place}.", "{name} goes to {place} on {day}.",
                       "On {day} {name} always walks to {place}."],
    ("food",): ["{name} likes to eat {food}.", "For lunch, {name} usually has {food}.",
                "The favourite food of {name} is {food}."],
    ("colour",): ["{name} always wears a {colour} coat.", "The coat {name} wears is {colour}."],
    ("year",): ["{name} started working in {year}.", "In {year}, {name} began to work."],
    ("year", "trade"): ["In {year}, {name} became a {trade}."],
    ("time",): ["{name} gets up at {time} every morning.", "Each day {name} wakes at {time}."],
}
# Question templates by the fact they ask about; they may name the person's other visit fact.
QUESTIONS = {
    "town": ["Where does {name} live?", "In which town does {name} live?",
             "What town is {name}'s home?"],
    "trade": ["What does {name} work as?", "What is {name}'s job?", "What is {name}'s trade?"],
    "age": ["How old is {name}?", "What is {name}'s age?"],
    "day": ["On which day does {name} visit {place}?", "When does {name} go to {place}?",
            "What day does {name} visit {place}?"],
    "place": ["Where does {name} go on {day}?", "Which place does {name} visit on {day}?",
              "What place does {name} visit every {day}?"],
    "food": ["What does {name} eat?", "What food does {name} like?",
             "What is {name}'s favourite food?"],
    "colour": ["Which colour is {name}'s coat?", "What colour coat does {name} wear?"],
    "year": ["In which year did {name} start working?", "When did {name} start working?",
             "What year did {name} begin work?"],
    "time": ["At what time does {name} get up?", "When does {name} wake up?"],
}


def fill(template, values):
    """(text, {field: start}) for template formatted with values."""
    text, starts = "", {}
    for literal, field, _, _ in string.Formatter().parse(template):
        text += literal
        if field is not None:
            starts[field] = len(text)
            text += values[field]
    return text, starts


def paragraph(r, names):
    """(context, people, facts): facts maps (person index, field) to answer (text, start)."""
    people = [{"name": n} for n in r.sample(names, 2)]
    for field, values in VALUES.items():  # different values for the two people, so spans are unique
        for p, value in zip(people, r.sample(values, 2)):
            p[field] = value
    if r.random() < 0.25:
        people = people[:1]
    near = r.choice([t for t in corpus.TOWNS if t not in {p["town"] for p in people}])
    kinds = sorted(SENTENCES)
    chosen = [(0, k) for k in r.sample(kinds, r.randint(2, 4) if len(people) > 1 else
                                       r.randint(3, 5))]
    if len(people) > 1:
        chosen += [(1, k) for k in r.sample(kinds, r.randint(1, 2))]
    r.shuffle(chosen)
    sentences, facts, offset = [], {}, 0
    for person, kind in chosen:
        if any((person, field) in facts for field in kind):
            continue  # a fact is stated only once
        values = dict(people[person], near=near, season=r.choice(corpus.SEASONS))
        text, starts = fill(r.choice(SENTENCES[kind]), values)
        for field in kind:
            facts[person, field] = (values[field], offset + starts[field])
        sentences.append(text)
        offset += len(text) + 1
    if len(sentences) < 3:
        return paragraph(r, names)
    context = " ".join(sentences)
    assert len(context.split()) < MAX_WORDS, context
    return context, people, facts


def questions(r, people, facts, count):
    """Up to count distinct questions (each unanswerable with IMPOSSIBLE_SHARE), in random order."""
    answerable = sorted(facts)
    missing = [(i, f) for i in range(len(people)) for f in QUESTIONS if (i, f) not in facts]
    impossible = sum(r.random() < IMPOSSIBLE_SHARE for _ in range(count))
    keys = [(k, False) for k in r.sample(answerable, min(count - impossible, len(answerable)))]
    keys += [(k, True) for k in r.sample(missing, impossible)]
    r.shuffle(keys)
    result = []
    for (person, field), unanswerable in keys:
        question = r.choice(QUESTIONS[field]).format(**people[person])
        answers = [] if unanswerable else [
            dict(zip(("text", "answer_start"), facts[person, field]))]
        result.append({"question": question, "answers": answers, "is_impossible": unanswerable})
    return result


def make_split(r, split, names, paragraphs, count):
    """SQuAD "data": one article per paragraph, titled by its first person."""
    data = []
    for i in range(paragraphs):
        context, people, facts = paragraph(r, names)
        qas = questions(r, people, facts, count)
        for j, qa in enumerate(qas):
            qa["id"] = f"demo-{split}-{i:03d}-{j}"
            for a in qa["answers"]:
                assert context[a["answer_start"]:][:len(a["text"])] == a["text"], (context, a)
        data.append({"title": people[0]["name"], "paragraphs": [{"context": context, "qas": qas}]})
    return data


def write_json(path, data, impossible):
    """Writes a SQuAD file (2.0, or 1.1 without impossible questions) under a temporary name."""
    for article in data:
        for p in article["paragraphs"]:
            p["qas"] = [{"id": qa["id"], "question": qa["question"], "answers": qa["answers"],
                         **({"is_impossible": qa["is_impossible"]} if impossible else {})}
                        for qa in p["qas"] if impossible or not qa["is_impossible"]]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        json.dump({"version": "v2.0" if impossible else "1.1", "data": data}, f, indent=None,
                  ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)
    qas = [qa for a in data for p in a["paragraphs"] for qa in p["qas"]]
    unanswerable = sum(not qa["answers"] for qa in qas)
    print(f"wrote {path}: {len(data)} paragraphs, {len(qas)} questions, "
          f"{len(qas) - unanswerable} answerable, {unanswerable} impossible")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--train", type=int, default=100, help="train paragraphs")
    parser.add_argument("--dev", type=int, default=30, help="dev paragraphs")
    parser.add_argument("--questions", type=int, default=4, help="questions per paragraph")
    parser.add_argument("--no_impossible", action="store_true",
                        help="leave out unanswerable questions; write SQuAD 1.1-style files")
    parser.add_argument("--output_dir", default=os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "demo_squad"))
    args = parser.parse_args()
    r = random.Random(args.seed)
    names = {"train": corpus.FIRST[:-DEV_NAMES], "dev": corpus.FIRST[-DEV_NAMES:]}
    os.makedirs(args.output_dir, exist_ok=True)
    for split in ("train", "dev"):
        data = make_split(r, split, names[split], getattr(args, split), args.questions)
        write_json(os.path.join(args.output_dir, f"{split}.json"), data, not args.no_impossible)


if __name__ == "__main__":
    main()
