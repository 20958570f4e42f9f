r"""What Python 2.7.18 wrote for GOLDEN_VALUE (tests/test_py2data.py), to check tests/py2pickle.py.

Made with python2.7, where Mailman/Bouncer.py held only `class _BounceInfo: pass`:

    b = _BounceInfo(); b.member = "b@y"; b.score = 1.5
    x300 = "x" * 300  # a second reference: cPickle memoizes only objects referenced twice
    d = {"description": "Gr\xfc\xdfe \"q\" 's\n\\", "members": {"a@x": 0}, "n": 5, "big": 70000,
         "huge": 2**40, "neg": -3, "t": (1, "ab"), "e": (), "l": [u"\xe4\u20ac\n\\", True, False, None],
         "bi": b, "long": x300}
    cPickle.dumps(d, protocol) for protocol 0, 1 and 2
    marshal.dumps({("1167609600.0", "<a@x>"): "<a@x>", ("", "<b@x>"): "<b@x>", ("", "<c@x>"): "Gr\xfc\xdfe",
                   "n": 3, "big": 2**40, "neg": -2, "lng": 2**70, "u": u"\xe4", "l": [1.5, None, True]})

Python 2 iterates a dict in hash order: the tests give the keys in that order.
"""

PICKLE_0 = (
    b'(dp1\nS\'description\'\np2\nS\'Gr\\xfc\\xdfe "q"'
    b" \\'s\\n\\\\'\np3\nsS'big'\np4\nI70000\nsS'bi'\np5"
    b'\n(iMailman.Bouncer\n_BounceInfo\np6\n(dp7\nS'
    b"'member'\np8\nS'b@y'\np9\nsS'score'\np10\nF1.5"
    b"\nsbsS'members'\np11\n(dp12\nS'a@x'\np13\nI0\ns"
    b"sS'huge'\np14\nI1099511627776\nsS'e'\n(tsS'n"
    b"eg'\np15\nI-3\nsS'l'\n(lp16\nV\xe4\\u20ac\\u000a\\u"
    b"005c\np17\naI01\naI00\naNasS'long'\np18\nS'" +
    b"x" * 300 +
    b"'\np19\nsS'n'\nI5\nsS't'\n(I1\nS'ab'\np20\ntp21\n"
    b's.'
)
PICKLE_1 = (
    b'}q\x01(U\x0bdescriptionq\x02U\x0eGr\xfc\xdfe "q" \'s\n\\q\x03U\x03b'
    b'igq\x04Jp\x11\x01\x00U\x02biq\x05(cMailman.Bouncer\n_Bounce'
    b'Info\nq\x06oq\x07}q\x08(U\x06memberq\tU\x03b@yq\nU\x05scoreq\x0b'
    b'G?\xf8\x00\x00\x00\x00\x00\x00ubU\x07membersq\x0c}q\rU\x03a@xq\x0eK\x00sU\x04hug'
    b'eq\x0fI1099511627776\nU\x01e)U\x03negq\x10J\xfd\xff\xff\xffU\x01l]q\x11'
    b'(X\x07\x00\x00\x00\xc3\xa4\xe2\x82\xac\n\\q\x12I01\nI00\nNeU\x04longq\x13T,\x01\x00\x00' +
    b"x" * 300 +
    b'q\x14U\x01nK\x05U\x01t(K\x01U\x02abq\x15tq\x16u.'
)
PICKLE_2 = (
    b'\x80\x02}q\x01(U\x0bdescriptionq\x02U\x0eGr\xfc\xdfe "q" \'s\n\\q\x03U'
    b'\x03bigq\x04Jp\x11\x01\x00U\x02biq\x05(cMailman.Bouncer\n_Boun'
    b'ceInfo\nq\x06oq\x07}q\x08(U\x06memberq\tU\x03b@yq\nU\x05score'
    b'q\x0bG?\xf8\x00\x00\x00\x00\x00\x00ubU\x07membersq\x0c}q\rU\x03a@xq\x0eK\x00sU\x04h'
    b'ugeq\x0fI1099511627776\nU\x01e)U\x03negq\x10J\xfd\xff\xff\xffU\x01l]'
    b'q\x11(X\x07\x00\x00\x00\xc3\xa4\xe2\x82\xac\n\\q\x12\x88\x89NeU\x04longq\x13T,\x01\x00\x00' +
    b"x" * 300 +
    b'q\x14U\x01nK\x05U\x01tK\x01U\x02abq\x15\x86q\x16u.'
)
MARSHAL = (
    b'{(\x02\x00\x00\x00t\x00\x00\x00\x00s\x05\x00\x00\x00<b@x>s\x05\x00\x00\x00<b@x>(\x02\x00\x00\x00s\x0c\x00\x00'
    b'\x001167609600.0s\x05\x00\x00\x00<a@x>s\x05\x00\x00\x00<a@x>t\x01\x00\x00\x00uu'
    b'\x02\x00\x00\x00\xc3\xa4t\x03\x00\x00\x00bigI\x00\x00\x00\x00\x00\x01\x00\x00(\x02\x00\x00\x00R\x00\x00\x00\x00s\x05\x00\x00\x00<c'
    b'@x>s\x05\x00\x00\x00Gr\xfc\xdfet\x03\x00\x00\x00lngl\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04t\x01\x00\x00'
    b'\x00l[\x03\x00\x00\x00g\x00\x00\x00\x00\x00\x00\xf8?NTt\x03\x00\x00\x00negi\xfe\xff\xff\xfft\x01\x00\x00\x00ni\x03\x00'
    b'\x00\x000'
)
