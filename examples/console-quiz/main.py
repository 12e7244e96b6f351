"""A two-question quiz for the terminal, for the `console` template: each visitor of the app's web
terminal gets their own copy. Prompts are in Korean and English."""

QUESTIONS = [
    # (question, answer shown after a miss, accepted answers in lower case)
    ("대한민국의 수도는 어디일까요? / What is the capital of South Korea?", "서울 / Seoul", {"서울", "seoul"}),
    ("7 × 8 은 얼마일까요? / What is 7 × 8?", "56", {"56"}),
]


def main():
    print("퀴즈를 시작합니다! / Let's start the quiz!")
    score = 0
    for number, (question, shown, accepted) in enumerate(QUESTIONS, start=1):
        try:
            answer = input(f"\n{number}. {question}\n> ")
        except EOFError:
            # The visitor closed the terminal or the input ended: score what was answered.
            print()
            break
        if answer.strip().lower() in accepted:
            score += 1
            print("정답입니다! / Correct!")
        else:
            print(f"아쉬워요, 정답은 {shown} 입니다. / Not quite: the answer is {shown}.")
    print(f"\n점수 / Score: {score}/{len(QUESTIONS)}")


if __name__ == "__main__":
    main()
