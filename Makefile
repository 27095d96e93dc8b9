.PHONY: test chat echo testserver bench clean

test:
	bash scripts/test.sh

chat:
	bash scripts/chat.sh

echo:
	python3 -m fastsockjs echo

testserver:
	python3 -m fastsockjs testserver

bench:
	python3 -m pytest bench -q --benchmark-only --benchmark-autosave

clean:
	rm -rf build dist *.egg-info fastsockjs/*.so fastsockjs/*.c
