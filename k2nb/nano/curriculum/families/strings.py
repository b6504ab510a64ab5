"""Strings and lists: reverse, count a letter, upper case, sort a list, count words, count vowels."""

from __future__ import annotations

from k2nb.nano.curriculum.slots import NAMES, int_list, letter_of, one_of, sentence, word
from k2nb.nano.curriculum.spec import Clauses, Family, Kind, checked

WORD_CLAUSES = ["the word is '{w}'", "{name} writes '{w}'", "the string is '{w}'", "the text is '{w}'",
                "here is the word '{w}'", "the input is '{w}'"]

REVERSE_QUESTIONS = [
    "Reverse the word '{w}'.",
    "What is '{w}' spelled backwards?",
    "Write '{w}' in reverse order.",
    "{name} wants '{w}' reversed. What is it?",
    "Spell '{w}' backwards.",
    "'{w}' reversed is what?",
    "Tell me '{w}' read from right to left.",
    "Compute the reverse of the string '{w}'.",
    "I typed '{w}'. What do I get if I reverse it?",
    "Write each letter of '{w}' from last to first.",
    "Give the word '{w}' in reverse.",
    "Work out '{w}' backwards, letter by letter.",
    "{name} reads '{w}' from the end to the start. What does {name} read?",
    "What string do you get by reversing '{w}'?",
    "Print '{w}' in backward order.",
    "Reverse this word: '{w}'.",
    "Flip the letters of '{w}'.",
]
REVERSE_CLAUSES = Clauses(
    facts=[WORD_CLAUSES],
    asks=["Reverse it.", "Spell it backwards.", "Write it from the end.", "What is it reversed?",
          "Give it in reverse order.", "Flip it end to end."],
)

COUNT_QUESTIONS = [
    "How many times does '{c}' appear in '{w}'?",
    "Count the letter '{c}' in '{w}'.",
    "In the word '{w}', how many '{c}' are there?",
    "{name} asks: how often is '{c}' in '{w}'?",
    "'{w}': how many '{c}'?",
    "Tell me how many '{c}' letters are in '{w}'.",
    "Compute the number of times the letter '{c}' occurs in '{w}'.",
    "I wrote '{w}'. How often does '{c}' show up?",
    "Work out the count of '{c}' in the word '{w}'.",
    "In '{w}', count every '{c}'.",
    "How often does the letter '{c}' occur in '{w}'?",
    "Find how many '{c}' the string '{w}' contains.",
    "{name} spells '{w}'. How many times does {name} write '{c}'?",
    "Count occurrences of '{c}' inside '{w}'.",
    "What is the count of the character '{c}' in '{w}'?",
    "Look at '{w}' and count the '{c}' letters.",
    "Number of '{c}' characters in '{w}'?",
]
COUNT_CLAUSES = Clauses(
    facts=[WORD_CLAUSES,
           ["the letter is '{c}'", "we look for '{c}'", "the character to count is '{c}'",
            "the letter to find is '{c}'"]],
    asks=["How many times does the letter appear in the word?", "Count that letter in the word.",
          "How often does it occur?", "Find the count of the letter.",
          "How many such characters are in the word?"],
)

UPPER_QUESTIONS = [
    "Write '{w}' in capital letters.",
    "Convert '{w}' to upper case.",
    "What is '{w}' in uppercase?",
    "{name} needs '{w}' in caps.",
    "Uppercase '{w}'.",
    "'{w}' in capitals?",
    "Tell me '{w}' written in upper case letters.",
    "Compute the uppercase form of '{w}'.",
    "I need the word '{w}' in block capitals.",
    "Work out '{w}' with every letter capitalized.",
    "Change '{w}' so every letter is a capital.",
    "{name} types '{w}' with caps lock on. What appears?",
    "Give '{w}' in all caps.",
    "What does '{w}' look like in capital letters?",
    "Capitalize every letter of '{w}'.",
    "Print the word '{w}' in uppercase.",
    "Make '{w}' all upper case.",
]
UPPER_CLAUSES = Clauses(
    facts=[WORD_CLAUSES],
    asks=["Make it upper case.", "Write it in capitals.", "Give it in caps.", "What is it in uppercase?",
          "Capitalize all of it."],
)

SORT_QUESTIONS = [
    "Sort the list {xs} from smallest to largest.",
    "Put {xs} in ascending order.",
    "What is {xs} sorted?",
    "{name} has {xs}. Sort it.",
    "Sort {xs} in ascending order.",
    "{xs} sorted from low to high?",
    "Tell me {xs} ordered from smallest to biggest.",
    "Compute the ascending sort of {xs}.",
    "I have the numbers {xs}. Put them in order, smallest first.",
    "Work out the sorted version of {xs}.",
    "Order these values from lowest to highest: {xs}.",
    "{name} wants {xs} ranked from the least to the greatest.",
    "Please give {xs} in sorted ascending order.",
    "Sort this list: {xs}.",
    "Rearrange {xs} so that each number is no larger than the next.",
    "What does {xs} look like after sorting it low to high?",
    "Arrange {xs} in increasing order.",
]
SORT_CLAUSES = Clauses(
    facts=[["the list is {xs}", "{name} has {xs}", "the numbers are {xs}", "the data is {xs}"]],
    asks=["Sort it ascending.", "Put it in increasing order.", "Order it from low to high.",
          "What is it sorted?", "Arrange it from low to high."],
)

WORDS_QUESTIONS = [
    "How many words are in '{s}'?",
    "Count the words in the sentence '{s}'.",
    "Number of words in '{s}'?",
    "{name} wrote '{s}'. How many words is that?",
    "'{s}': how many words?",
    "Count how many words '{s}' has.",
    "Compute the number of words in the text '{s}'.",
    "I typed '{s}'. How many words did I type?",
    "Work out how many words the sentence '{s}' contains.",
    "How many separate words does '{s}' have?",
    "Find the number of words in the phrase '{s}'.",
    "{name} says '{s}'. Count the words.",
    "Split '{s}' into words. How many are there?",
    "What is the total number of words in '{s}'?",
    "Give the count of words in '{s}'.",
    "In the line '{s}', how many words appear?",
    "Tell me the word count of '{s}'.",
]
WORDS_CLAUSES = Clauses(
    facts=[["the sentence is '{s}'", "{name} writes '{s}'", "the text is '{s}'", "the line reads '{s}'"]],
    asks=["Count its words.", "How many words does it have?", "What is the word count?"],
)

VOWELS_QUESTIONS = [
    "How many vowels are in '{w}'?",
    "Count the vowels in '{w}'.",
    "Number of vowels in the word '{w}'?",
    "{name} asks how many vowels '{w}' has.",
    "'{w}': how many vowels?",
    "Tell me the number of vowels in '{w}'.",
    "Compute how many vowels the word '{w}' contains.",
    "I wrote '{w}'. How many vowels did I use?",
    "Work out the vowel count of '{w}'.",
    "Count a, e, i, o and u in '{w}'.",
    "Find how many vowels appear in '{w}'.",
    "{name} circles every vowel in '{w}'. How many circles are there?",
    "What is the number of vowels in the string '{w}'?",
    "In '{w}', how many letters are vowels?",
    "How many vowels does '{w}' have?",
    "Give the vowel count for the word '{w}'.",
    "How many of the letters in '{w}' are vowels?",
]
VOWELS_CLAUSES = Clauses(
    facts=[WORD_CLAUSES],
    asks=["Count its vowels.", "How many vowels does it have?", "How many of its letters are vowels?",
          "Find its vowel count."],
)

FAMILY = Family(
    "strings",
    n_heldout=1,
    # every kind draws every slot, so that the draws of a seed do not depend on the kind
    slots=(("w", word()), ("c", letter_of("w")), ("xs", int_list(4, 7)), ("s", sentence(3, 8))),
    people=(("name", one_of(*NAMES)),),
    kinds=(
        Kind("reverse", questions=REVERSE_QUESTIONS, clauses=REVERSE_CLAUSES, key=("w",),
             steps=checked("Use slicing with step -1.", "'{w}'[::-1]",
                           "Check with reversed().", "print(''.join(reversed('{w}')) == {out})")),
        Kind("count", questions=COUNT_QUESTIONS, clauses=COUNT_CLAUSES, key=("w", "c"),
             steps=checked("Use str.count.", "print('{w}'.count('{c}'))",
                           "Check with a loop over the letters.",
                           "print(sum(1 for ch in '{w}' if ch == '{c}'))"),
             roles={"c": "letter", "w": "word"}),
        Kind("upper", questions=UPPER_QUESTIONS, clauses=UPPER_CLAUSES, key=("w",),
             steps=checked("Use str.upper.", "'{w}'.upper()",
                           "Check that lower() gives the word back.", "print({out}.lower() == '{w}')")),
        # The check tests the result the first call kept in the namespace, not a copy of its output:
        # copied back from the output, a list of six numbers came out garbled ("r = [8, 27, …]" for
        # "[21, 27, …]"), printed False, and the model re-checked with the same copy until its calls broke.
        Kind("sort", questions=SORT_QUESTIONS, clauses=SORT_CLAUSES, key=("xs",),
             steps=checked("Use sorted and keep the result in r.", "r = sorted({xs})\nprint(r)",
                           "Check: r is ordered and has the same items.",
                           "print(all(a <= b for a, b in zip(r, r[1:])) and sorted(r) == sorted({xs}))")),
        Kind("words", questions=WORDS_QUESTIONS, clauses=WORDS_CLAUSES, key=("s",),
             steps=checked("Split on spaces and count.", "print(len('{s}'.split()))",
                           "Check: count spaces plus one.", "print('{s}'.count(' ') + 1)")),
        Kind("vowels", questions=VOWELS_QUESTIONS, clauses=VOWELS_CLAUSES, key=("w",),
             steps=checked("Count letters in 'aeiou'.", "print(sum(1 for ch in '{w}' if ch in 'aeiou'))",
                           "Check with str.count for each vowel.",
                           "print(sum('{w}'.count(v) for v in 'aeiou'))")),
    ),
)
